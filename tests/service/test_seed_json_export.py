"""The seed's JSON files (seed/service.py): the catalog exported, and imported again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from priorizer.allocation import service as allocation_service
from priorizer.db import Database
from priorizer.queue.policy import queue_policy
from priorizer.seed import service as seed_service
from priorizer.startup import import_files, prepare
from tests.conftest import create_pg_database, drop_pg_database, make_settings
from tests.support.factories import add_assets, allocate_in, asset
from tests.support.seed_json import CKAN_ROWS, meaningful

# --- export -----------------------------------------------------------------------------------


@pytest.fixture
def fresh(db_url, tmp_path, clock) -> Iterator[tuple[Any, Database]]:
    """A second, empty database of the same kind."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    else:
        url = create_pg_database("priorizer_test_fresh")
    settings = make_settings(url, tmp_path / "fresh")
    prepare(settings, now=clock())
    database = Database(url)
    try:
        yield settings, database
    finally:
        database.dispose()
        if not url.startswith("sqlite"):
            drop_pg_database(url)


def export(database, settings, directory: Path) -> dict[str, int]:
    with database.read() as session:
        return seed_service.export_seed(
            session,
            directory=directory,
            ckan_file=settings.ckan_data_file,
            allocations_file=settings.allocations_file,
        )


def test_export_writes_both_files_and_extra_fields_survive(
    database, settings, clock, files, tmp_path
):
    import_files(database, settings, *files, now=clock())
    out = tmp_path / "out" / "nested"

    counts = export(database, settings, out)

    assert counts == {"assets": 3, "allocations": 3}
    exported = json.loads((out / "ckan_data.json").read_text())
    by_id = {row["id"]: row for row in exported}
    for original in CKAN_ROWS:
        row = by_id[original["id"]]
        assert {key: row[key] for key in original} == original
    records = json.loads((out / "allocations.json").read_text())
    assert sorted((r["asset_id"], r["node_id"], r["status"]) for r in records) == [
        ("res-1", "node-a", "allocated"),
        ("res-1", "node-b", "completed"),
        ("res-3", "node-a", "allocated"),
    ]
    assert sorted(p.name for p in out.iterdir()) == ["allocations.json", "ckan_data.json"]


def test_export_leaves_out_closed_allocations(database, settings, clock, tmp_path):
    add_assets(database, settings, [asset(1), asset(2)], clock())
    queue = queue_policy(settings)
    with database.write() as session:
        allocate_in(
            session,
            settings,
            clock(),
            node_id="node-a",
            free_space_gb=1,
            max_assets=10,
            lease_seconds=60,
        )
        allocation_service.release_lease(
            session, asset_id="asset-1", node_id="node-a", queue=queue, now=clock()
        )

    export(database, settings, tmp_path / "out")

    records = json.loads((tmp_path / "out" / "allocations.json").read_text())
    assert [(r["asset_id"], r["status"]) for r in records] == [("asset-2", "allocated")]


def test_export_then_import_into_fresh_database_gives_same_catalog(
    database, settings, clock, files, fresh, tmp_path
):
    import_files(database, settings, *files, now=clock())
    with database.write() as session:
        allocate_in(session, settings, clock(), node_id="node-new", free_space_gb=4, max_assets=10)
    export(database, settings, tmp_path / "out")
    fresh_settings, fresh_database = fresh

    import_files(
        fresh_database,
        fresh_settings,
        tmp_path / "out" / "ckan_data.json",
        tmp_path / "out" / "allocations.json",
        now=clock(),
    )

    asset_columns = ("created_at", "updated_at")
    assert (
        meaningful(fresh_database, drop=asset_columns)["assets"]
        == meaningful(database, drop=asset_columns)["assets"]
    )
    lease_columns = ("id",)
    assert (
        meaningful(fresh_database, drop=lease_columns)["allocations"]
        == meaningful(database, drop=lease_columns)["allocations"]
    )
    # A second round trip gives byte-identical files.
    export(fresh_database, fresh_settings, tmp_path / "again")
    for name in ("ckan_data.json", "allocations.json"):
        assert (tmp_path / "again" / name).read_text() == (tmp_path / "out" / name).read_text()
