"""Migration 0005 on a database that has data: old failures get a reason code, and copies
that disagree stop counting toward the target, their assets back in the queue."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic import command
from sqlalchemy import MetaData, create_engine, select

from priorizer.db import alembic_config
from tests.conftest import create_pg_database, drop_pg_database, pg_skip_reason

T0 = datetime(2026, 1, 1, 12, 0)
POLICY = {"replication_target": 2, "copy_penalty": 3.0, "unknown_size_mb": 1024.0}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
        return
    if pg_skip_reason():
        pytest.skip(pg_skip_reason())
    url = create_pg_database("priorizer_upgrade")
    yield url
    drop_pg_database(url)


def at(minutes: int) -> datetime:
    return T0.replace(minute=minutes)


def asset_row(asset_id: str, *, checksum: str, conflicting: bool, copies: int) -> dict:
    return {
        "id": asset_id,
        "url": f"https://example.org/{asset_id}",
        "name": asset_id,
        "size_mb": 10.0,
        "base_priority": 9,
        "priority": 9,
        "state": "active",
        "created_at": T0,
        "updated_at": T0,
        "checksum_sha256": checksum,
        "conflicting_copies": conflicting,
        "failed_nodes": 0,
        "copies": copies,
        "leases": 0,
        "budget_mb": 10.0,
        "rank": None,  # at the target of 2
    }


def lease_row(asset_id: str, node_id: str, status: str, minute: int, **more: object) -> dict:
    return {
        "asset_id": asset_id,
        "node_id": node_id,
        "status": status,
        "reserved_mb": 10.0,
        "allocated_at": T0,
        "renewed_at": T0,
        "expires_at": T0.replace(day=2),
        "closed_at": at(minute),
        "checksum_sha256": None,
        "note": None,
        **more,
    }


def test_upgrade_settles_conflicting_copies_and_codes_old_failures(empty_url):
    config = alembic_config(empty_url)
    command.upgrade(config, "0004")
    engine = create_engine(empty_url)
    tables = MetaData()
    tables.reflect(engine)
    a, b = "a" * 64, "b" * 64
    with engine.begin() as conn:
        conn.execute(
            tables.tables["system_values"].insert(),
            [{"key": "queue_policy", "updated_at": T0, "value": POLICY}],
        )
        conn.execute(
            tables.tables["nodes"].insert(),
            [{"id": n, "first_seen_at": T0, "last_seen_at": T0} for n in ("n1", "n2", "n3")],
        )
        conn.execute(
            tables.tables["assets"].insert(),
            [
                asset_row("tie", checksum=a, conflicting=True, copies=2),
                asset_row("outvoted", checksum=a, conflicting=True, copies=3),
                asset_row("agreed", checksum=a, conflicting=False, copies=2),
            ],
        )
        conn.execute(
            tables.tables["allocations"].insert(),
            [
                lease_row("tie", "n1", "completed", 1, checksum_sha256=a),
                lease_row("tie", "n2", "completed", 2, checksum_sha256=b),
                lease_row("outvoted", "n1", "completed", 1, checksum_sha256=a),
                lease_row("outvoted", "n2", "completed", 2, checksum_sha256=b),
                lease_row("outvoted", "n3", "completed", 3, checksum_sha256=b),
                lease_row("agreed", "n1", "completed", 1, checksum_sha256=a),
                lease_row("agreed", "n2", "completed", 2, checksum_sha256=a),
                lease_row("agreed", "n3", "failed", 3, note="HTTP 404"),
            ],
        )

    command.upgrade(config, "head")

    with engine.connect() as conn:
        tables = MetaData()
        tables.reflect(conn)
        assets, leases = tables.tables["assets"], tables.tables["allocations"]
        found = {
            row.id: (row.checksum_sha256, row.disputed_copies, row.rank)
            for row in conn.execute(select(assets))
        }
        disputes = {
            (row.asset_id, row.node_id): (row.dispute, row.reason_code)
            for row in conn.execute(select(leases))
        }
    engine.dispose()
    # A tie goes to the first reported; a majority wins over it.
    assert found == {"tie": (a, 1, 6.0), "outvoted": (b, 1, None), "agreed": (a, 0, None)}
    assert disputes == {
        ("tie", "n1"): (None, None),
        ("tie", "n2"): ("checksum", None),
        ("outvoted", "n1"): ("checksum", None),
        ("outvoted", "n2"): (None, None),
        ("outvoted", "n3"): (None, None),
        ("agreed", "n1"): (None, None),
        ("agreed", "n2"): (None, None),
        ("agreed", "n3"): (None, "unspecified"),
    }
