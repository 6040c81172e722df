"""The seed's JSON files: ckan_data.json and allocations.json, imported, exported and loaded on
first start (seed/service.py, startup.py)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from priorizer.allocation import service as allocation_service
from priorizer.allocation.models import Allocation
from priorizer.app import queue_policy
from priorizer.catalog.models import Asset, Dataset
from priorizer.db import Database, migrate
from priorizer.errors import Invalid
from priorizer.models import metadata
from priorizer.seed import service as seed_service
from priorizer.startup import import_files, prepare
from priorizer.system import service as system_service
from tests.conftest import create_pg_database, drop_pg_database, make_settings
from tests.support.factories import add_assets, allocate_in, asset, table_snapshot

DEMO_FILE = Path(__file__).parents[2] / "src" / "priorizer" / "seed" / "demo_ckan_data.json"
ENVIDAT_LISTING = (
    Path(__file__).parents[1]
    / "fixtures"
    / "ckan"
    / "envidat_current_package_list_with_resources_2021.json.gz"
)

CKAN_ROWS: list[dict[str, Any]] = [
    {
        "id": "res-1",
        "url": "https://data.example.org/d1/temperature.csv",
        "name": "temperature.csv",
        "size_mb": 12.5,
        "priority": 9,
        "dataset_id": "ds-1",
        "format": "CSV",
        # Fields the seed had that we do not model: they must come back out of an export.
        "resource_type": "file.upload",
        "tags": ["climate", "alps"],
        "checksum": None,
        "size_bytes": 13107200,
        "metadata": {"license": "CC-BY-4.0", "years": [2019, 2020]},
    },
    {
        "id": "res-2",
        "url": "https://data.example.org/d1/readme.pdf",
        "name": "readme.pdf",
        "size_mb": None,
        "priority": 4,
    },
    {
        "id": "res-3",
        "url": "https://data.example.org/d2/snow_depth.nc",
        "name": "snow_depth.nc",
        "size_mb": 2048,
        "priority": 7,
        "dataset_id": "ds-2",
        "last_modified": "2024-11-02T08:00:00",
    },
]

ALLOCATION_RECORDS: list[dict[str, Any]] = [
    {"asset_id": "res-1", "node_id": "node-a", "allocated_at": "2026-01-15T06:30:00"},
    {"asset_id": "res-1", "node_id": "node-b", "status": "completed"},
    {"asset_id": "res-3", "node_id": "node-a", "status": "allocated"},
]


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def meaningful(database: Database, *, drop: tuple[str, ...] = ("updated_at",)) -> dict[str, Any]:
    """Every row of every table as a dict, without the columns named in `drop`."""
    with database.read() as session:
        return {
            table.name: sorted(
                (
                    {k: v for k, v in row._mapping.items() if k not in drop}
                    for row in session.execute(select(table))
                ),
                key=repr,
            )
            for table in metadata.sorted_tables
        }


def assets_by_id(database: Database) -> dict[str, Any]:
    """Asset rows (plain rows: they outlive the read transaction)."""
    with database.read() as session:
        return {row.id: row for row in session.execute(select(Asset.__table__)).all()}


def allocations(database: Database) -> list[Any]:
    with database.read() as session:
        table = Allocation.__table__
        return list(session.execute(select(table).order_by(table.c.id)).all())


def import_rows(database, settings, now, assets: Any, records: Any = None):
    """The service-level import: parse, then write in one transaction."""
    parsed_assets = seed_service.parse_assets(assets, source="ckan")
    parsed_records = seed_service.parse_allocations(records or [], source="allocations")
    with database.write() as session:
        return seed_service.import_seed(
            session,
            assets=parsed_assets,
            allocations=parsed_records,
            queue=queue_policy(settings),
            lease_seconds=settings.allocation_expiry_seconds,
            now=now,
        )


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    return (
        write_json(tmp_path / "in" / "ckan_data.json", CKAN_ROWS),
        write_json(tmp_path / "in" / "allocations.json", ALLOCATION_RECORDS),
    )


# --- ckan_data.json ---------------------------------------------------------------------------


def test_import_ckan_rows(database, settings, clock):
    report = import_rows(database, settings, clock(), CKAN_ROWS)

    assert (report.assets_created, report.assets_updated) == (3, 0)
    stored = assets_by_id(database)
    one = stored["res-1"]
    assert (one.url, one.name, one.size_mb) == (CKAN_ROWS[0]["url"], "temperature.csv", 12.5)
    assert (one.priority, one.base_priority, one.rank) == (9, 9, 9)
    assert (one.dataset_id, one.format) == ("ds-1", "CSV")
    assert one.extra == {
        "resource_type": "file.upload",
        "tags": ["climate", "alps"],
        "checksum": None,
        "size_bytes": 13107200,
        "metadata": {"license": "CC-BY-4.0", "years": [2019, 2020]},
    }
    two = stored["res-2"]
    assert (two.size_mb, two.budget_mb) == (None, settings.unknown_size_mb)
    assert two.extra is None
    assert stored["res-3"].extra == {"last_modified": "2024-11-02T08:00:00"}


def datasets_by_id(database: Database) -> dict[str, Any]:
    with database.read() as session:
        return {row.id: row for row in session.execute(select(Dataset.__table__)).all()}


def test_import_records_the_datasets_its_rows_name(database, settings, clock):
    # A dataset a harvest stored already keeps what the harvest said of it.
    with database.write() as session:
        session.add(Dataset(id="ds-2", title="Snow depth", organization="wsl", tags=["snow"]))

    import_rows(database, settings, clock(), [*CKAN_ROWS, {**CKAN_ROWS[1], "id": "res-4"}])
    import_rows(database, settings, clock(), CKAN_ROWS)  # again: nothing doubles

    stored = datasets_by_id(database)
    assert sorted(stored) == ["ds-1", "ds-2"]  # res-2 and res-4 name none
    assert (stored["ds-1"].title, stored["ds-1"].source, stored["ds-1"].tags) == (None, None, [])
    assert (stored["ds-2"].title, stored["ds-2"].organization) == ("Snow depth", "wsl")
    with database.read() as session:
        figures = system_service.status(session, replication_target=2)
    assert figures["datasets"] == 2


def test_import_fills_defaults(database, settings, clock):
    import_rows(
        database,
        settings,
        clock(),
        [
            {"id": 42, "url": "https://x.org/files/archive.tar.gz"},
            {"id": "no-name", "url": "https://x.org/dir/", "priority": 2},
        ],
    )

    stored = assets_by_id(database)
    numeric = stored["42"]
    assert numeric.name == "archive.tar.gz"
    assert numeric.priority == 5
    assert numeric.size_mb is None
    assert stored["no-name"].name == "dir"


def test_import_ckan_object_keyed_by_id(database, settings, clock):
    import_rows(
        database,
        settings,
        clock(),
        {"a": {"url": "https://x.org/a.csv", "priority": 3}, "b": {"url": "https://x.org/b.csv"}},
    )

    stored = assets_by_id(database)
    assert sorted(stored) == ["a", "b"]
    assert (stored["a"].priority, stored["b"].priority) == (3, 5)


def test_reimport_updates_in_place_and_keeps_holders(database, settings, clock):
    import_rows(database, settings, clock(), CKAN_ROWS, ALLOCATION_RECORDS)
    changed = [{**CKAN_ROWS[0], "priority": 6, "name": "renamed.csv"}]

    clock.advance(hours=1)
    report = import_rows(database, settings, clock(), changed)

    assert (report.assets_created, report.assets_updated) == (0, 1)
    one = assets_by_id(database)["res-1"]
    assert (one.name, one.priority, one.base_priority) == ("renamed.csv", 6, 6)
    assert (one.copies, one.leases, one.rank) == (1, 1, None)
    assert one.created_at == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    assert one.updated_at == datetime(2026, 1, 15, 13, 0, tzinfo=UTC)


# --- allocations.json -------------------------------------------------------------------------


def test_import_allocation_records(database, settings, clock):
    report = import_rows(database, settings, clock(), CKAN_ROWS, ALLOCATION_RECORDS)

    assert (report.allocations_added, report.allocations_skipped) == (3, 0)
    rows = [(a.asset_id, a.node_id, a.status) for a in allocations(database)]
    assert rows == [
        ("res-1", "node-a", "allocated"),
        ("res-1", "node-b", "completed"),
        ("res-3", "node-a", "allocated"),
    ]
    stored = assets_by_id(database)
    assert (stored["res-1"].copies, stored["res-1"].leases, stored["res-1"].rank) == (1, 1, None)
    # priority 7, one holder (-3), 2048 MiB (-2 for the doubling begun past 1 GiB)
    assert (stored["res-3"].copies, stored["res-3"].leases, stored["res-3"].rank) == (0, 1, 2)
    reserved = {(a.asset_id, a.node_id): a.reserved_mb for a in allocations(database)}
    assert reserved[("res-3", "node-a")] == 2048


def test_naive_timestamps_are_read_as_utc(database, settings, clock):
    import_rows(database, settings, clock(), CKAN_ROWS, ALLOCATION_RECORDS)

    by_key = {(a.asset_id, a.node_id): a for a in allocations(database)}
    lease = by_key[("res-1", "node-a")]
    assert lease.allocated_at == datetime(2026, 1, 15, 6, 30, tzinfo=UTC)
    assert lease.expires_at == lease.allocated_at + timedelta(hours=24)
    # Without a timestamp, the import time.
    assert by_key[("res-3", "node-a")].allocated_at == clock()
    copy = by_key[("res-1", "node-b")]
    assert copy.closed_at == clock()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2025-06-01T10:00:00", datetime(2025, 6, 1, 10, 0, tzinfo=UTC)),
        ("2025-06-01T10:00:00.250000", datetime(2025, 6, 1, 10, 0, 0, 250000, tzinfo=UTC)),
        ("2025-06-01 10:00:00", datetime(2025, 6, 1, 10, 0, tzinfo=UTC)),
        ("2025-06-01T10:00:00Z", datetime(2025, 6, 1, 10, 0, tzinfo=UTC)),
        ("2025-06-01T10:00:00+02:00", datetime(2025, 6, 1, 8, 0, tzinfo=UTC)),
        # Fixed in seed.schemas.naive_to_utc after 56acf09, which took "-05:00" for no offset.
        pytest.param(
            "2025-06-01T10:00:00-05:00",
            datetime(2025, 6, 1, 15, 0, tzinfo=UTC),
            id="negative-offset",
        ),
        pytest.param(
            "2025-06-01T23:30:00-09:30",
            datetime(2025, 6, 2, 9, 0, tzinfo=UTC),
            id="negative-half-hour-offset",
        ),
    ],
)
def test_allocation_timestamps(database, settings, clock, given, expected):
    add_assets(database, settings, [asset(1)], clock())

    import_rows(
        database,
        settings,
        clock(),
        [],
        [{"asset_id": "asset-1", "node_id": "node-a", "allocated_at": given}],
    )

    [lease] = allocations(database)
    assert lease.allocated_at == expected


def test_import_allocations_node_map_form(database, settings, clock):
    report = import_rows(
        database, settings, clock(), CKAN_ROWS, {"node-a": ["res-1", "res-2"], "node-b": "res-3"}
    )

    assert report.allocations_added == 3
    rows = sorted((a.node_id, a.asset_id, a.status) for a in allocations(database))
    assert rows == [
        ("node-a", "res-1", "allocated"),
        ("node-a", "res-2", "allocated"),
        ("node-b", "res-3", "allocated"),
    ]


def test_import_allocations_node_map_with_records(database, settings, clock):
    import_rows(
        database,
        settings,
        clock(),
        CKAN_ROWS,
        {"node-a": [{"asset_id": "res-1", "status": "completed"}]},
    )

    [copy] = allocations(database)
    assert (copy.node_id, copy.asset_id, copy.status) == ("node-a", "res-1", "completed")


def test_duplicate_allocation_records_are_added_once(database, settings, clock):
    report = import_rows(
        database,
        settings,
        clock(),
        CKAN_ROWS,
        [
            {"asset_id": "res-1", "node_id": "node-a"},
            {"asset_id": "res-1", "node_id": "node-a"},
        ],
    )

    assert (report.allocations_added, report.allocations_skipped) == (1, 1)
    assert assets_by_id(database)["res-1"].leases == 1


# --- re-import is idempotent ------------------------------------------------------------------


def test_reimport_of_the_same_files_changes_nothing_that_matters(database, settings, clock, files):
    first = import_files(database, settings, *files, now=clock())
    before = meaningful(database)

    clock.advance(hours=2)
    second = import_files(database, settings, *files, now=clock())

    assert (first.assets_created, first.allocations_added) == (3, 3)
    assert (second.assets_created, second.assets_updated) == (0, 3)
    assert (second.allocations_added, second.allocations_skipped) == (0, 3)
    assert meaningful(database) == before
    # Only the timestamp moved.
    assert {a.updated_at for a in assets_by_id(database).values()} == {clock()}


# --- malformed files --------------------------------------------------------------------------


def refused(database, settings, clock, ckan: Path, allocations_file: Path | None) -> str:
    before = table_snapshot(database)
    with pytest.raises(Invalid) as caught:
        import_files(database, settings, ckan, allocations_file, now=clock())
    assert table_snapshot(database) == before
    return str(caught.value)


@pytest.fixture
def populated(database, settings, clock):
    """Something already in the database, to show a refused file leaves it as it was."""
    add_assets(database, settings, [asset(1), asset(2)], clock())
    import_rows(database, settings, clock(), [], [{"asset_id": "asset-1", "node_id": "n"}])


def test_bad_json_names_line_and_column(database, settings, clock, populated, tmp_path):
    bad = tmp_path / "ckan_data.json"
    bad.write_text('[\n {"id": "a", "url": "u"},\n {"id": "b",, "url": "u"}\n]\n')

    message = refused(database, settings, clock, bad, None)

    assert str(bad) in message
    assert "line 3, column 13" in message


def test_bad_json_in_allocations_names_file_and_line(
    database, settings, clock, populated, tmp_path, files
):
    bad = tmp_path / "allocations.json"
    bad.write_text('[{"asset_id": "res-1", "node_id": "n"}\n')

    message = refused(database, settings, clock, files[0], bad)

    assert str(bad) in message
    assert "line 2" in message


@pytest.mark.parametrize(
    ("rows", "where"),
    [
        pytest.param(
            [{"id": "a", "url": "u"}, {"id": "b", "url": "u", "priority": 11}],
            "row 2, field priority",
            id="priority-11",
        ),
        pytest.param(
            [{"id": "a", "url": "u", "priority": 0}], "row 1, field priority", id="priority-0"
        ),
        pytest.param(
            [
                {"id": "a", "url": "u"},
                {"id": "b", "url": "u"},
                {"id": "c", "url": "u", "priority": "high"},
            ],
            "row 3, field priority",
            id="priority-word",
        ),
        pytest.param([{"id": "a", "url": "u", "size_mb": -1}], "row 1, field size_mb", id="size"),
        pytest.param([{"id": "a"}], "row 1, field url", id="no-url"),
        pytest.param([{"url": "u"}], "row 1, field id", id="no-id"),
        pytest.param([{"id": "", "url": "u"}], "row 1, field id", id="empty-id"),
        pytest.param(["just a string"], "row 1", id="row-not-object"),
        pytest.param("not a list", "top level", id="top-level-string"),
    ],
)
def test_bad_ckan_row_names_row_and_field(
    database, settings, clock, populated, tmp_path, rows, where
):
    bad = write_json(tmp_path / "ckan_data.json", rows)

    message = refused(database, settings, clock, bad, None)

    assert str(bad) in message
    assert where in message


def test_duplicate_ids_name_both_rows(database, settings, clock, populated, tmp_path):
    rows = [{"id": "a", "url": "u"}, {"id": "b", "url": "u"}, {"id": "a", "url": "v"}]
    bad = write_json(tmp_path / "ckan_data.json", rows)

    message = refused(database, settings, clock, bad, None)

    assert "row 3: id 'a' already given in row 1" in message


def test_many_problems_are_summarised(database, settings, clock, populated, tmp_path):
    rows = [{"id": f"a{n}", "url": "u", "priority": 99} for n in range(12)]
    bad = write_json(tmp_path / "ckan_data.json", rows)

    message = refused(database, settings, clock, bad, None)

    assert "row 5, field priority" in message
    assert "row 6, field priority" not in message
    assert "and 7 more" in message


def test_allocations_naming_unknown_asset_write_nothing(
    database, settings, clock, populated, tmp_path, files
):
    bad = write_json(
        tmp_path / "allocations.json",
        [{"asset_id": "res-1", "node_id": "n1"}, {"asset_id": "ghost", "node_id": "n1"}],
    )

    # The catalog file is valid and new: even its assets must not be written.
    message = refused(database, settings, clock, files[0], bad)

    assert "ghost" in message
    assert "res-1" not in message
    assert "res-1" not in assets_by_id(database)


@pytest.mark.parametrize(
    ("records", "where"),
    [
        pytest.param([{"asset_id": "res-1"}], "row 1, field node_id", id="no-node"),
        pytest.param(
            [{"asset_id": "res-1", "node_id": "n", "status": "released"}],
            "row 1, field status",
            id="status",
        ),
        pytest.param(
            [{"asset_id": "res-1", "node_id": "n a"}], "row 1, field node_id", id="node-pattern"
        ),
        pytest.param(
            [
                {"asset_id": "res-1", "node_id": "n"},
                {"asset_id": "res-1", "node_id": "m", "allocated_at": "yesterday"},
            ],
            "row 2, field allocated_at",
            id="timestamp",
        ),
    ],
)
def test_bad_allocation_record_names_row_and_field(
    database, settings, clock, populated, tmp_path, files, records, where
):
    bad = write_json(tmp_path / "allocations.json", records)

    message = refused(database, settings, clock, files[0], bad)

    assert where in message


def test_unreadable_files(database, settings, clock, populated, tmp_path):
    missing = tmp_path / "nope.json"
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('[{"id": "caf\xe9", "url": "u"}]'.encode("latin-1"))

    assert "cannot be read" in refused(database, settings, clock, missing, None)
    assert "cannot be read" in refused(database, settings, clock, latin1, None)


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


# --- records that meet what the database already holds ---------------------------------------


def test_a_copy_in_the_records_turns_an_open_lease_into_that_copy(database, settings, clock):
    import_rows(database, settings, clock(), CKAN_ROWS, [{"asset_id": "res-1", "node_id": "n-1"}])

    import_rows(
        database,
        settings,
        clock(),
        CKAN_ROWS,
        [{"asset_id": "res-1", "node_id": "n-1", "status": "completed"}],
    )

    statuses = [(row.asset_id, row.node_id, row.status) for row in allocations(database)]
    assert statuses == [("res-1", "n-1", "completed")]
    res_1 = assets_by_id(database)["res-1"]
    assert (res_1.leases, res_1.copies) == (0, 1)


def test_a_copy_beats_a_lease_of_the_same_pair_in_one_file(database, settings, clock):
    import_rows(
        database,
        settings,
        clock(),
        CKAN_ROWS,
        [
            {"asset_id": "res-3", "node_id": "n-1", "status": "allocated"},
            {"asset_id": "res-3", "node_id": "n-1", "status": "completed"},
        ],
    )

    assert [row.status for row in allocations(database)] == ["completed"]
    res_3 = assets_by_id(database)["res-3"]
    assert (res_3.leases, res_3.copies) == (0, 1)


def test_expiry_given_in_the_records_is_kept(database, settings, clock):
    expires = "2026-01-15T18:30:00+00:00"
    import_rows(
        database,
        settings,
        clock(),
        CKAN_ROWS,
        [{"asset_id": "res-1", "node_id": "n-1", "expires_at": expires}],
    )

    [lease] = allocations(database)
    assert lease.expires_at == datetime.fromisoformat(expires)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "\ud800"])
def test_extra_fields_that_could_not_be_exported_are_refused(database, settings, clock, value):
    before = table_snapshot(database)
    row = {"id": "res-9", "url": "https://data.example.org/x", "note": value}

    with pytest.raises(Invalid, match="row 1"):
        import_rows(database, settings, clock(), [row])

    assert table_snapshot(database) == before
