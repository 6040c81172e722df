"""watched sources; how a harvest paged; data.json pages to discover

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 12:00:00
"""

import sqlalchemy as sa
from alembic import op

import priorizer.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("harvest_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paging", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("paging_note", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("pages_to_discover", sa.Integer(), nullable=True))
    op.create_table(
        "watched_sources",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("organization", sa.String(length=500), nullable=True),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("every_seconds", sa.Float(), nullable=False),
        sa.Column("full_every_seconds", sa.Float(), nullable=False),
        sa.Column("created_at", priorizer.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("next_run_at", priorizer.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("leased_by", sa.String(length=200), nullable=True),
        sa.Column("lease_until", priorizer.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_run_id", sa.BigInteger(), nullable=True),
        sa.Column("last_run_at", priorizer.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_full_at", priorizer.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_state", sa.String(length=20), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("datasets", sa.Integer(), nullable=True),
        sa.Column("removed_upstream", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watched_sources")),
        sa.UniqueConstraint("key", name=op.f("uq_watched_sources_key")),
    )
    with op.batch_alter_table("watched_sources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_watched_sources_next_run_at"), ["next_run_at"], unique=False
        )

    op.create_index(
        "ix_datasets_removed",
        "datasets",
        ["id"],
        unique=False,
        sqlite_where=sa.text("removed_at IS NOT NULL"),
        postgresql_where=sa.text("removed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_datasets_removed", table_name="datasets")
    op.drop_table("watched_sources")
    with op.batch_alter_table("harvest_runs", schema=None) as batch_op:
        batch_op.drop_column("pages_to_discover")
        batch_op.drop_column("paging_note")
        batch_op.drop_column("paging")
