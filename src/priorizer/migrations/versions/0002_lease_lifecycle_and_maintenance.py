"""lease lifecycle and maintenance

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 10:58:09.526527
"""

import sqlalchemy as sa
from alembic import op

import priorizer.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maintenance_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("slot", sa.BigInteger(), nullable=True),
        sa.Column("runner", sa.String(length=200), nullable=False),
        sa.Column("started_at", priorizer.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", priorizer.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("steps", sa.JSON(), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_runs")),
        sa.UniqueConstraint("slot", name=op.f("uq_maintenance_runs_slot")),
    )
    with op.batch_alter_table("maintenance_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_maintenance_runs_started_at"), ["started_at"], unique=False
        )

    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checksum_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("magnet_link", sa.Text(), nullable=True))

    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checksum_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("conflicting_copies", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("failed_nodes", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("failures_reset_at", priorizer.db.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_assets_state", ["state"], unique=False)

    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("completions", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("failures", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("expirations", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("releases", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("consecutive_successes", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("lease_cap", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("lost_at", priorizer.db.UtcDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_column("lost_at")
        batch_op.drop_column("lease_cap")
        batch_op.drop_column("consecutive_successes")
        batch_op.drop_column("releases")
        batch_op.drop_column("expirations")
        batch_op.drop_column("failures")
        batch_op.drop_column("completions")

    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index("ix_assets_state")
        batch_op.drop_column("failures_reset_at")
        batch_op.drop_column("failed_nodes")
        batch_op.drop_column("conflicting_copies")
        batch_op.drop_column("checksum_sha256")

    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_column("magnet_link")
        batch_op.drop_column("checksum_sha256")

    with op.batch_alter_table("maintenance_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_maintenance_runs_started_at"))

    op.drop_table("maintenance_runs")
