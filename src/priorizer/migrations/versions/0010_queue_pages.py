"""fewer index pages written per lease: no index of queue budgets alone

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 21:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Requests no longer read the smallest budget in the queue: this index only cost every
    # claim one more page to write.
    op.drop_index("ix_assets_open_budget", table_name="assets")


def downgrade() -> None:
    op.create_index(
        "ix_assets_open_budget",
        "assets",
        ["budget_mb"],
        unique=False,
        sqlite_where=sa.text("rank IS NOT NULL"),
        postgresql_where=sa.text("rank IS NOT NULL"),
    )
