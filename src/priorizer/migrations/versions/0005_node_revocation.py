"""node revocation

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 11:00:00
"""

import sqlalchemy as sa
from alembic import op

import priorizer.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revoked_at", priorizer.db.UtcDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
