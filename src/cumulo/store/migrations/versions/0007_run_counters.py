"""a run counter per experiment

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_run_number", sa.Integer(), server_default="0", nullable=False)
        )
    # Existing experiments go on numbering after their highest run.
    op.execute(
        "UPDATE experiments SET last_run_number = COALESCE("
        "(SELECT MAX(runs.number) FROM runs WHERE runs.experiment_id = experiments.id), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_column("last_run_number")
