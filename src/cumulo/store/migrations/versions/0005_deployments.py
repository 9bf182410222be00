"""endpoints and deployments

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "endpoints",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("auth_mode", sa.String(length=16), nullable=False),
        sa.Column("primary_key", sa.String(length=128), nullable=False),
        sa.Column("secondary_key", sa.String(length=128), nullable=False),
        sa.Column("traffic", sa.Text(), nullable=False),
        sa.Column("mirror_traffic", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_endpoints_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoints")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_endpoints_workspace_id_name")),
    )
    op.create_table(
        "deployments",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("endpoint_id", ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("models", sa.Text(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"], ["endpoints.id"], name=op.f("fk_deployments_endpoint_id_endpoints")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("endpoint_id", "name", name=op.f("uq_deployments_endpoint_id_name")),
    )
    op.create_index(
        op.f("ix_deployments_lease_expires_at"), "deployments", ["lease_expires_at"], unique=False
    )
    op.create_table(
        "deployment_replicas",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("deployment_id", ID, nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("url", sa.String(length=512), nullable=True),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("log_path", sa.Text(), nullable=True),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("ready_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_replicas_deployment_id_deployments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_replicas")),
    )
    op.create_index(
        op.f("ix_deployment_replicas_deployment_id_state"),
        "deployment_replicas",
        ["deployment_id", "state"],
        unique=False,
    )
    op.create_table(
        "deployment_metrics",
        sa.Column("deployment_id", ID, nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("latency_sum_ms", sa.Float(precision=53), nullable=False),
        sa.Column("histogram", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_metrics_deployment_id_deployments"),
        ),
        sa.PrimaryKeyConstraint(
            "deployment_id", "minute", "source", name=op.f("pk_deployment_metrics")
        ),
    )
    op.create_table(
        "deployment_request_logs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("deployment_id", ID, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(precision=53), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_request_logs_deployment_id_deployments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_request_logs")),
    )
    op.create_index(
        op.f("ix_deployment_request_logs_deployment_id_at"),
        "deployment_request_logs",
        ["deployment_id", "at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_deployment_request_logs_deployment_id_at"), table_name="deployment_request_logs"
    )
    op.drop_table("deployment_request_logs")
    op.drop_table("deployment_metrics")
    op.drop_index(
        op.f("ix_deployment_replicas_deployment_id_state"), table_name="deployment_replicas"
    )
    op.drop_table("deployment_replicas")
    op.drop_index(op.f("ix_deployments_lease_expires_at"), table_name="deployments")
    op.drop_table("deployments")
    op.drop_table("endpoints")
