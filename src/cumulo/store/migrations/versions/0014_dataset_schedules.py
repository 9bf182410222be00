"""schedules that fire on a registered dataset's new versions

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("on_dataset", sa.String(length=250), nullable=True))
        batch_op.add_column(sa.Column("dataset_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_schedules", schema=None) as batch_op:
        batch_op.drop_column("dataset_version")
        batch_op.drop_column("on_dataset")
