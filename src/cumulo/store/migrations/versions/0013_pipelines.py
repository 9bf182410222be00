"""pipelines, steps, published pipelines and schedules

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "pipeline_endpoints",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("default_pipeline_id", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_pipeline_endpoints_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_endpoints")),
        sa.UniqueConstraint(
            "workspace_id", "name", name=op.f("uq_pipeline_endpoints_workspace_id_name")
        ),
    )
    op.create_table(
        "pipeline_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", _ID, nullable=False),
        sa.Column("experiment_id", _ID, nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("resume_of", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_pipeline_runs_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_runs")),
        sa.UniqueConstraint("run_id", name=op.f("uq_pipeline_runs_run_id")),
    )
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_runs_state_lease_expires_at"),
            ["state", "lease_expires_at"],
            unique=False,
        )

    op.create_table(
        "pipeline_schedules",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("pipeline_id", sa.String(length=32), nullable=False),
        sa.Column("experiment_name", sa.String(length=250), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("frequency", sa.String(length=16), nullable=True),
        sa.Column("interval", sa.Integer(), nullable=True),
        sa.Column("start_time", sa.BigInteger(), nullable=True),
        sa.Column("cron", sa.String(length=200), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_fire_at", sa.BigInteger(), nullable=True),
        sa.Column("last_fired_at", sa.BigInteger(), nullable=True),
        sa.Column("last_run_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_pipeline_schedules_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_schedules")),
        sa.UniqueConstraint(
            "workspace_id", "name", name=op.f("uq_pipeline_schedules_workspace_id_name")
        ),
    )
    with op.batch_alter_table("pipeline_schedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_schedules_enabled_next_fire_at"),
            ["enabled", "next_fire_at"],
            unique=False,
        )

    op.create_table(
        "published_pipelines",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_published_pipelines_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_published_pipelines")),
        sa.UniqueConstraint(
            "workspace_id",
            "name",
            "version",
            name=op.f("uq_published_pipelines_workspace_id_name_version"),
        ),
    )
    op.create_table(
        "pipeline_steps",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("pipeline_run_id", _ID, nullable=False),
        sa.Column("workspace_id", _ID, nullable=False),
        sa.Column("experiment_id", _ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("parts", sa.Text(), nullable=True),
        sa.Column("outputs", sa.Text(), nullable=True),
        sa.Column("reused_from", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["pipeline_run_id"],
            ["pipeline_runs.id"],
            name=op.f("fk_pipeline_steps_pipeline_run_id_pipeline_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_steps")),
        sa.UniqueConstraint(
            "pipeline_run_id", "name", name=op.f("uq_pipeline_steps_pipeline_run_id_name")
        ),
    )
    with op.batch_alter_table("pipeline_steps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_steps_workspace_id_experiment_id_name"),
            ["workspace_id", "experiment_id", "name"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_pipeline_steps_workspace_id_fingerprint"),
            ["workspace_id", "fingerprint"],
            unique=False,
        )

    op.create_table(
        "schedule_firings",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("schedule_id", _ID, nullable=False),
        sa.Column("tick", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["pipeline_schedules.id"],
            name=op.f("fk_schedule_firings_schedule_id_pipeline_schedules"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_firings")),
        sa.UniqueConstraint(
            "schedule_id", "tick", name=op.f("uq_schedule_firings_schedule_id_tick")
        ),
    )


def downgrade() -> None:
    op.drop_table("schedule_firings")
    with op.batch_alter_table("pipeline_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_steps_workspace_id_fingerprint"))
        batch_op.drop_index(batch_op.f("ix_pipeline_steps_workspace_id_experiment_id_name"))

    op.drop_table("pipeline_steps")
    op.drop_table("published_pipelines")
    with op.batch_alter_table("pipeline_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_schedules_enabled_next_fire_at"))

    op.drop_table("pipeline_schedules")
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_runs_state_lease_expires_at"))

    op.drop_table("pipeline_runs")
    op.drop_table("pipeline_endpoints")
