"""The seed's JSON files (seed/service.py): ckan_data.json and allocations.json imported,
re-imported, and records meeting what the database already holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from priorizer.catalog.models import Dataset
from priorizer.errors import Invalid
from priorizer.startup import import_files
from priorizer.status import service as system_service
from tests.support.factories import add_assets, asset, table_snapshot
from tests.support.seed_json import (
    ALLOCATION_RECORDS,
    CKAN_ROWS,
    allocations,
    assets_by_id,
    datasets_by_id,
    import_rows,
    meaningful,
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
