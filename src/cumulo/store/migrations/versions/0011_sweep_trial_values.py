"""a multi-objective sweep trial's values

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweep_trials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("objective_values", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sweep_trials", schema=None) as batch_op:
        batch_op.drop_column("objective_values")
