"""the host of a pool node's process

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nodes recorded before have none: their process ids are taken to be this host's.
    with op.batch_alter_table("pool_nodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pool_nodes", schema=None) as batch_op:
        batch_op.drop_column("host")
