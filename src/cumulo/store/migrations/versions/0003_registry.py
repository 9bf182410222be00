"""model registry, logged models and run-to-model lineage

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_dataset_inputs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("source_type", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("schema", sa.Text(), nullable=False),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_dataset_inputs")),
        sa.UniqueConstraint(
            "run_id", "name", "digest", name=op.f("uq_run_dataset_inputs_run_id_name_digest")
        ),
    )
    op.create_table(
        "run_model_links",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "model_id", "direction", name=op.f("pk_run_model_links")),
    )
    op.create_index(
        op.f("ix_run_model_links_model_id"), "run_model_links", ["model_id"], unique=False
    )
    op.create_table(
        "logged_models",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column(
            "workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "experiment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("model_type", sa.String(length=250), nullable=True),
        sa.Column("source_run_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=False),
        sa.Column("user", sa.String(length=250), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_logged_models_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logged_models")),
    )
    op.create_index(
        op.f("ix_logged_models_source_run_id"), "logged_models", ["source_run_id"], unique=False
    )
    op.create_index(
        op.f("ix_logged_models_workspace_id_experiment_id_created_at"),
        "logged_models",
        ["workspace_id", "experiment_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "registered_models",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("user", sa.String(length=250), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_registered_models_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registered_models")),
        sa.UniqueConstraint(
            "workspace_id", "name", name=op.f("uq_registered_models_workspace_id_name")
        ),
    )
    op.create_table(
        "logged_model_metrics",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=True),
        sa.Column("is_nan", sa.Boolean(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("dataset_name", sa.String(length=500), nullable=True),
        sa.Column("dataset_digest", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.id"],
            name=op.f("fk_logged_model_metrics_model_id_logged_models"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logged_model_metrics")),
    )
    op.create_index(
        op.f("ix_logged_model_metrics_model_id_key"),
        "logged_model_metrics",
        ["model_id", "key"],
        unique=False,
    )
    op.create_table(
        "logged_model_params",
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.id"],
            name=op.f("fk_logged_model_params_model_id_logged_models"),
        ),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_logged_model_params")),
    )
    op.create_table(
        "logged_model_tags",
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.id"],
            name=op.f("fk_logged_model_tags_model_id_logged_models"),
        ),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_logged_model_tags")),
    )
    op.create_table(
        "model_versions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("logged_model_id", sa.String(length=64), nullable=True),
        sa.Column("storage_prefix", sa.String(length=1024), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("framework", sa.String(length=64), nullable=True),
        sa.Column("flavors", sa.Text(), nullable=True),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("user", sa.String(length=250), nullable=False),
        sa.Column("run_link", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_model_versions_model_id_registered_models"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("model_id", "version", name=op.f("uq_model_versions_model_id_version")),
        sa.UniqueConstraint("storage_prefix", name=op.f("uq_model_versions_storage_prefix")),
    )
    op.create_index(
        op.f("ix_model_versions_logged_model_id"),
        "model_versions",
        ["logged_model_id"],
        unique=False,
    )
    op.create_index(op.f("ix_model_versions_run_id"), "model_versions", ["run_id"], unique=False)
    op.create_table(
        "registered_model_aliases",
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("alias", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_registered_model_aliases_model_id_registered_models"),
        ),
        sa.PrimaryKeyConstraint("model_id", "alias", name=op.f("pk_registered_model_aliases")),
    )
    op.create_table(
        "registered_model_tags",
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_registered_model_tags_model_id_registered_models"),
        ),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_registered_model_tags")),
    )
    op.create_table(
        "model_version_tags",
        sa.Column(
            "version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_version_tags_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("version_id", "key", name=op.f("pk_model_version_tags")),
    )


def downgrade() -> None:
    op.drop_table("model_version_tags")
    op.drop_table("registered_model_tags")
    op.drop_table("registered_model_aliases")
    op.drop_index(op.f("ix_model_versions_run_id"), table_name="model_versions")
    op.drop_index(op.f("ix_model_versions_logged_model_id"), table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("logged_model_tags")
    op.drop_table("logged_model_params")
    op.drop_index(op.f("ix_logged_model_metrics_model_id_key"), table_name="logged_model_metrics")
    op.drop_table("logged_model_metrics")
    op.drop_table("registered_models")
    op.drop_index(
        op.f("ix_logged_models_workspace_id_experiment_id_created_at"), table_name="logged_models"
    )
    op.drop_index(op.f("ix_logged_models_source_run_id"), table_name="logged_models")
    op.drop_table("logged_models")
    op.drop_index(op.f("ix_run_model_links_model_id"), table_name="run_model_links")
    op.drop_table("run_model_links")
    op.drop_table("run_dataset_inputs")
