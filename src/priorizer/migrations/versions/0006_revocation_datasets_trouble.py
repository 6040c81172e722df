"""node revocation; datasets named by imported assets; indexes of assets in trouble

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 11:00:00
"""

import sqlalchemy as sa
from alembic import op

import priorizer.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TROUBLE_INDEXES = (
    ("ix_assets_failing", ["failed_nodes", "id"], "failed_nodes > 0"),
    ("ix_assets_conflicting", ["id"], "conflicting_copies"),
)


def upgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revoked_at", priorizer.db.UtcDateTime(timezone=True), nullable=True)
        )
    # Imports now record the datasets their rows name; those imported before get them here,
    # so the catalog's dataset count is true.
    empty = "'[]'::json" if op.get_bind().dialect.name == "postgresql" else "'[]'"
    op.execute(
        f"INSERT INTO datasets (id, tags) SELECT dataset_id, {empty} FROM "
        "(SELECT DISTINCT dataset_id FROM assets WHERE dataset_id IS NOT NULL "
        "AND dataset_id <> '' AND dataset_id NOT IN (SELECT id FROM datasets)) AS named"
    )
    # The dashboard lists failing and conflicting assets: few, found without a scan.
    for name, columns, where in TROUBLE_INDEXES:
        op.create_index(
            name,
            "assets",
            columns,
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    for name, _columns, _where in TROUBLE_INDEXES:
        op.drop_index(name, table_name="assets")
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
