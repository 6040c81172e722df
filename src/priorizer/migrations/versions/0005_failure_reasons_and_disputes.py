"""failure reason codes; what a node failed, indexed; disputed copies; unproven leases

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:00:00.000000
"""

import json

import sqlalchemy as sa
from alembic import op

import priorizer.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

FAILED = "reason_code IS NOT NULL"  # failed leases: see allocation.models.FAILED_SQL
UNPROVEN = "unproven_address IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason_code", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("reported_size_mb", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("dispute", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("unproven_address", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "ix_allocations_unproven_address",
            ["unproven_address", "status"],
            unique=False,
            sqlite_where=sa.text(UNPROVEN),
            postgresql_where=sa.text(UNPROVEN),
        )
        batch_op.create_index(
            "ix_allocations_failed",
            ["node_id", "asset_id", "closed_at"],
            unique=False,
            sqlite_where=sa.text(FAILED),
            postgresql_where=sa.text(FAILED),
        )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_size_reported", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("state_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("disputed_copies", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_failed_at", priorizer.db.UtcDateTime(timezone=True), nullable=True)
        )
    # Failures recorded before codes existed had none: they count as asset-side ones did.
    op.execute("UPDATE allocations SET reason_code = 'unspecified' WHERE status = 'failed'")
    settle_conflicting_copies()


# The checksum most of an asset's copies report (ties: the first reported), for the asset
# whose id is `{asset}`.
SETTLED = """(SELECT c.checksum_sha256 FROM allocations c
    WHERE c.asset_id = {asset} AND c.status = 'completed' AND c.checksum_sha256 IS NOT NULL
    GROUP BY c.checksum_sha256 ORDER BY count(*) DESC, min(c.closed_at), min(c.id) LIMIT 1)"""


def settle_conflicting_copies() -> None:
    """Copies that disagree with the settled checksum no longer count toward the target (as
    `allocation.evidence.settle` would have it): their assets return to the queue, so a
    further copy settles them. Sizes were not recorded with copies before: only checksums."""
    op.execute(
        "UPDATE allocations SET dispute = 'checksum' WHERE status = 'completed' "
        "AND checksum_sha256 IS NOT NULL "
        "AND asset_id IN (SELECT id FROM assets WHERE conflicting_copies) "
        f"AND checksum_sha256 <> {SETTLED.format(asset='allocations.asset_id')}"
    )
    op.execute(
        f"UPDATE assets SET checksum_sha256 = {SETTLED.format(asset='assets.id')}, "
        "disputed_copies = (SELECT count(*) FROM allocations c JOIN nodes n ON n.id = c.node_id "
        "WHERE c.asset_id = assets.id AND c.status = 'completed' AND c.dispute IS NOT NULL "
        "AND n.lost_at IS NULL) "
        "WHERE conflicting_copies"
    )
    rerank_conflicting()


def rerank_conflicting() -> None:
    """Ranks count holders without disputed copies now: re-rank the assets that have some, by
    the queue policy their ranks were computed with (`allocation.policy.rank`)."""
    bind = op.get_bind()
    stored = bind.execute(
        sa.text("SELECT value FROM system_values WHERE key = 'queue_policy'")
    ).scalar()
    if stored is None:
        return  # no ranks computed yet: the first start computes them all
    policy = json.loads(stored) if isinstance(stored, str) else stored
    holders = "(copies - disputed_copies + leases)"
    bind.execute(
        sa.text(
            f"UPDATE assets SET rank = CASE WHEN state = 'active' AND {holders} < :target "
            f"THEN priority - :penalty * {holders} ELSE NULL END WHERE disputed_copies > 0"
        ),
        {"target": policy["replication_target"], "penalty": policy["copy_penalty"]},
    )


def downgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_column("last_failed_at")
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_column("disputed_copies")
        batch_op.drop_column("state_reason")
        batch_op.drop_column("is_size_reported")
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_allocations_failed", sqlite_where=sa.text(FAILED), postgresql_where=sa.text(FAILED)
        )
        batch_op.drop_index(
            "ix_allocations_unproven_address",
            sqlite_where=sa.text(UNPROVEN),
            postgresql_where=sa.text(UNPROVEN),
        )
        batch_op.drop_column("unproven_address")
        batch_op.drop_column("dispute")
        batch_op.drop_column("reported_size_mb")
        batch_op.drop_column("reason_code")
