"""a registered model remembers the last version number it gave out

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registered_models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_version", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE registered_models SET last_version = COALESCE("
        "(SELECT MAX(version) FROM model_versions"
        " WHERE model_versions.model_id = registered_models.id), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("registered_models", schema=None) as batch_op:
        batch_op.drop_column("last_version")
