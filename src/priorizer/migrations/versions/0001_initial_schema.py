"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29 08:43:22.692360
"""

import sqlalchemy as sa
from alembic import op

import priorizer.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("size_mb", sa.Float(), nullable=True),
        sa.Column("format", sa.String(length=100), nullable=True),
        sa.Column("dataset_id", sa.String(length=200), nullable=True),
        sa.Column("base_priority", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), server_default="active", nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("created_at", priorizer.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", priorizer.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("copies", sa.Integer(), server_default="0", nullable=False),
        sa.Column("leases", sa.Integer(), server_default="0", nullable=False),
        sa.Column("budget_mb", sa.Float(), nullable=False),
        sa.Column("rank", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
    )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assets_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index(
            "ix_assets_open_budget",
            ["budget_mb"],
            unique=False,
            sqlite_where=sa.text("rank IS NOT NULL"),
            postgresql_where=sa.text("rank IS NOT NULL"),
        )
        batch_op.create_index("ix_assets_priority", ["priority"], unique=False)
        batch_op.create_index(
            "ix_assets_queue",
            ["rank", "budget_mb", "id"],
            unique=False,
            sqlite_where=sa.text("rank IS NOT NULL"),
            postgresql_where=sa.text("rank IS NOT NULL"),
        )

    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("organization", sa.String(length=500), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("modified_at", priorizer.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("first_seen_at", priorizer.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", priorizer.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("free_space_mb", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
    )
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nodes_last_seen_at"), ["last_seen_at"], unique=False)

    op.create_table(
        "system_values",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", priorizer.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_system_values")),
    )
    op.create_table(
        "allocations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("asset_id", sa.String(length=200), nullable=False),
        sa.Column("node_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reserved_mb", sa.Float(), nullable=False),
        sa.Column("allocated_at", priorizer.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", priorizer.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", priorizer.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", priorizer.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_allocations_asset_id_assets")
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_allocations_node_id_nodes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
    )
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.create_index("ix_allocations_asset", ["asset_id"], unique=False)
        batch_op.create_index("ix_allocations_node_status", ["node_id", "status"], unique=False)
        batch_op.create_index(
            "ix_allocations_status_expires", ["status", "expires_at"], unique=False
        )
        batch_op.create_index(
            "uq_allocations_holding",
            ["node_id", "asset_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('allocated', 'completed')"),
            postgresql_where=sa.text("status IN ('allocated', 'completed')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_allocations_holding",
            sqlite_where=sa.text("status IN ('allocated', 'completed')"),
            postgresql_where=sa.text("status IN ('allocated', 'completed')"),
        )
        batch_op.drop_index("ix_allocations_status_expires")
        batch_op.drop_index("ix_allocations_node_status")
        batch_op.drop_index("ix_allocations_asset")

    op.drop_table("allocations")
    op.drop_table("system_values")
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nodes_last_seen_at"))

    op.drop_table("nodes")
    op.drop_table("datasets")
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_assets_queue",
            sqlite_where=sa.text("rank IS NOT NULL"),
            postgresql_where=sa.text("rank IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_assets_open_budget",
            sqlite_where=sa.text("rank IS NOT NULL"),
            postgresql_where=sa.text("rank IS NOT NULL"),
        )
        batch_op.drop_index("ix_assets_priority")
        batch_op.drop_index(batch_op.f("ix_assets_dataset_id"))

    op.drop_table("assets")
