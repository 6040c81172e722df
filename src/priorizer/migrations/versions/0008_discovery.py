"""Discovery: asset probes, parents of expanded listings, gone assets

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 15:00:00
"""

import sqlalchemy as sa
from alembic import op

from priorizer.db import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("has_magnet_link", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("parent_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("probed_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_assets_parent", ["parent_id"], unique=False)
        batch_op.create_index("ix_assets_probed_at", ["probed_at"], unique=False)
    op.create_table(
        "asset_probes",
        sa.Column("asset_id", sa.String(length=200), nullable=False),
        sa.Column("final_url", sa.Text(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=200), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column("etag", sa.String(length=300), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("children", sa.Integer(), server_default="0", nullable=False),
        sa.Column("probed_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("asset_id"),
    )
    # Copies reported with a magnet link before this revision.
    op.execute(
        "UPDATE assets SET has_magnet_link = TRUE WHERE id IN (SELECT asset_id FROM allocations"
        " WHERE status = 'completed' AND magnet_link IS NOT NULL)"
    )


def downgrade() -> None:
    op.drop_table("asset_probes")
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index("ix_assets_probed_at")
        batch_op.drop_index("ix_assets_parent")
        batch_op.drop_column("probed_at")
        batch_op.drop_column("parent_id")
        batch_op.drop_column("has_magnet_link")
