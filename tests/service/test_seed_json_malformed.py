"""The seed's JSON files (seed/service.py): malformed files are refused, naming what is wrong,
and write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from priorizer.errors import Invalid
from priorizer.startup import import_files
from tests.support.factories import add_assets, asset, table_snapshot
from tests.support.seed_json import assets_by_id, import_rows, write_json

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
