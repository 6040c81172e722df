"""The seed's JSON files loaded on first start (startup.py): the DATA_DIRECTORY's files or the
demo catalog, once."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from priorizer.db import Database, migrate
from priorizer.errors import Invalid
from priorizer.startup import prepare
from tests.conftest import make_settings
from tests.support.factories import add_assets, asset
from tests.support.seed_json import (
    ALLOCATION_RECORDS,
    CKAN_ROWS,
    allocations,
    assets_by_id,
    datasets_by_id,
    meaningful,
    write_json,
)

DEMO_FILE = Path(__file__).parents[2] / "src" / "priorizer" / "seed" / "demo_ckan_data.json"
ENVIDAT_LISTING = (
    Path(__file__).parents[1]
    / "fixtures"
    / "ckan"
    / "envidat_current_package_list_with_resources_2021.json.gz"
)


# --- first start ------------------------------------------------------------------------------


def count_assets(settings) -> int:
    database = Database(settings.sqlalchemy_url)
    try:
        return len(assets_by_id(database))
    finally:
        database.dispose()


def test_first_start_imports_data_directory(settings, clock):
    write_json(settings.data_directory / settings.ckan_data_file, CKAN_ROWS)
    write_json(settings.data_directory / settings.allocations_file, ALLOCATION_RECORDS)

    prepare(settings, now=clock())

    database = Database(settings.sqlalchemy_url)
    try:
        assert sorted(assets_by_id(database)) == ["res-1", "res-2", "res-3"]
        assert len(allocations(database)) == 3
    finally:
        database.dispose()


def test_first_start_uses_configured_file_names(db_url, tmp_path, clock):
    settings = make_settings(
        db_url, tmp_path, ckan_data_file="catalog.json", allocations_file="leases.json"
    )
    write_json(settings.data_directory / "ckan_data.json", [{"id": "wrong", "url": "u"}])
    write_json(settings.data_directory / "catalog.json", CKAN_ROWS)
    write_json(settings.data_directory / "leases.json", {"node-z": ["res-2"]})

    prepare(settings, now=clock())

    database = Database(settings.sqlalchemy_url)
    try:
        assert sorted(assets_by_id(database)) == ["res-1", "res-2", "res-3"]
        assert [(a.node_id, a.asset_id) for a in allocations(database)] == [("node-z", "res-2")]
    finally:
        database.dispose()


def test_first_start_without_allocations_file(settings, clock):
    write_json(settings.data_directory / settings.ckan_data_file, CKAN_ROWS)

    prepare(settings, now=clock())

    database = Database(settings.sqlalchemy_url)
    try:
        assert len(assets_by_id(database)) == 3
        assert allocations(database) == []
    finally:
        database.dispose()


def test_later_start_does_not_reimport(settings, clock):
    path = write_json(settings.data_directory / settings.ckan_data_file, CKAN_ROWS)
    prepare(settings, now=clock())
    write_json(path, [{**row, "priority": 1} for row in CKAN_ROWS] + [{"id": "res-4", "url": "u"}])

    clock.advance(days=1)
    prepare(settings, now=clock())

    database = Database(settings.sqlalchemy_url)
    try:
        stored = assets_by_id(database)
        assert sorted(stored) == ["res-1", "res-2", "res-3"]
        assert stored["res-1"].priority == 9
    finally:
        database.dispose()


def test_first_start_with_bad_file_fails_and_writes_nothing(settings, clock):
    write_json(
        settings.data_directory / settings.ckan_data_file,
        [{"id": "a", "url": "u"}, {"id": "b", "url": "u", "priority": 12}],
    )

    with pytest.raises(Invalid, match="row 2, field priority"):
        prepare(settings, now=clock())

    assert count_assets(settings) == 0


def test_first_start_on_empty_directory_loads_nothing(settings, clock):
    prepare(settings, now=clock())

    assert count_assets(settings) == 0


def test_demo_catalog_loads_into_empty_database(settings, clock):
    prepare(settings, demo=True, now=clock())

    database = Database(settings.sqlalchemy_url)
    try:
        stored = assets_by_id(database)
        assert len(stored) == 200
        assert all(1 <= a.priority <= 10 and a.url.startswith("https://") for a in stored.values())
        named = {a.dataset_id for a in stored.values()}
        assert None not in named and len(named) == 64
        assert set(datasets_by_id(database)) == named  # "Datasets" on /status is 64, not 0
    finally:
        database.dispose()


def test_demo_sizes_are_the_envidat_files_sizes_to_the_byte():
    """The demo catalog's files are EnviDat's (its 2021 listing, kept as a test fixture). Sizes
    were once rounded to 0.001 MB, which made a 476-byte README and an 85-byte CSV 0.0 MB: a
    zero reads as "empty" where the file is not."""
    demo = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    with gzip.open(ENVIDAT_LISTING, "rt", encoding="utf-8") as listing:
        packages = json.load(listing)
    packages = packages["result"] if isinstance(packages, dict) else packages
    size = {r["id"]: int(r["size"]) for p in packages for r in p["resources"] if r.get("size")}

    assert len(demo) == 200
    for row in demo:
        assert row["size_mb"] > 0, row["id"]
        assert row["size_mb"] * 1024 * 1024 == size[row["id"]], row["id"]


def test_demo_catalog_not_loaded_into_non_empty_database(settings, clock):
    migrate(settings.sqlalchemy_url)
    database = Database(settings.sqlalchemy_url)
    try:
        add_assets(database, settings, [asset(1)], clock())
        prepare(settings, demo=True, now=clock())
        assert sorted(assets_by_id(database)) == ["asset-1"]
    finally:
        database.dispose()


def test_demo_flag_twice_loads_once(settings, clock):
    prepare(settings, demo=True, now=clock())
    database = Database(settings.sqlalchemy_url)
    try:
        before = meaningful(database)
        clock.advance(hours=1)
        prepare(settings, demo=True, now=clock())
        assert meaningful(database) == before
    finally:
        database.dispose()


def test_data_files_take_precedence_over_demo(settings, clock):
    write_json(settings.data_directory / settings.ckan_data_file, CKAN_ROWS)

    prepare(settings, demo=True, now=clock())

    assert count_assets(settings) == 3
