"""failure reason codes; what a node failed, indexed

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import priorizer.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

FAILED = "reason_code IS NOT NULL"  # failed leases: see allocation.models.FAILED_SQL


def upgrade() -> None:
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason_code", sa.String(length=20), nullable=True))
        batch_op.create_index(
            "ix_allocations_failed",
            ["node_id", "asset_id", "closed_at"],
            unique=False,
            sqlite_where=sa.text(FAILED),
            postgresql_where=sa.text(FAILED),
        )
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_failed_at", priorizer.db.UtcDateTime(timezone=True), nullable=True)
        )
    # Failures recorded before codes existed had none: they count as asset-side ones did.
    op.execute("UPDATE allocations SET reason_code = 'unspecified' WHERE status = 'failed'")


def downgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_column("last_failed_at")
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_allocations_failed", sqlite_where=sa.text(FAILED), postgresql_where=sa.text(FAILED)
        )
        batch_op.drop_column("reason_code")
