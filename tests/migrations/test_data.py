"""Migrations that carry data over: run on a database holding rows of the revision before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from priorizer.db import alembic_config
from tests.conftest import create_pg_database, drop_pg_database, pg_skip_reason


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
        return
    reason = pg_skip_reason()
    if reason:
        pytest.skip(reason)
    url = create_pg_database("priorizer_migration")
    yield url
    drop_pg_database(url)


ASSET = (
    "INSERT INTO assets (id, url, name, base_priority, priority, state, created_at, updated_at,"
    " copies, leases, budget_mb, failed_nodes, conflicting_copies, dataset_id)"
    " VALUES (:id, :url, :name, 5, 5, 'active', :created, :updated, 0, 0, 1.0, 0, false,"
    " :dataset)"
)


def test_0006_records_the_datasets_imported_assets_name(empty_url):
    command.upgrade(alembic_config(empty_url), "0004")
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO datasets (id, title, tags) VALUES ('ds-h', 'Kept', '[]')"))
        for n, dataset in enumerate(["ds-a", "ds-a", "ds-b", "ds-h", None, ""]):
            conn.execute(
                text(ASSET),
                {
                    "id": f"a{n}",
                    "name": f"a{n}",
                    "url": f"https://x.org/{n}",
                    "created": "2026-01-01",
                    "updated": "2026-01-01",
                    "dataset": dataset,
                },
            )

    command.upgrade(alembic_config(empty_url), "0006")

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, title, tags FROM datasets ORDER BY id")).all()
    engine.dispose()
    assert [(row[0], row[1]) for row in rows] == [("ds-a", None), ("ds-b", None), ("ds-h", "Kept")]
    assert all(row[2] in ([], "[]") for row in rows)
