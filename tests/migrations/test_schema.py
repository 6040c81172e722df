"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from priorizer.models import metadata


def test_migrated_schema_matches_models(db_url):
    engine = create_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()

    assert differences == []
    assert {"assets", "datasets", "nodes", "allocations", "system_values"} <= tables


def test_queue_and_holding_indexes_exist(db_url):
    engine = create_engine(db_url)
    with engine.connect() as conn:
        inspector = inspect(conn)
        asset_indexes = {i["name"]: i for i in inspector.get_indexes("assets")}
        allocation_indexes = {i["name"]: i for i in inspector.get_indexes("allocations")}
    engine.dispose()

    assert asset_indexes["ix_assets_queue"]["column_names"] == ["rank", "budget_mb", "id"]
    assert allocation_indexes["uq_allocations_holding"]["unique"]
    assert allocation_indexes["uq_allocations_holding"]["column_names"] == ["node_id", "asset_id"]
