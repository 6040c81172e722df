"""The maintenance cycle's runs (maintenance/service.py): slots and the runner lock, health.

Everything runs on SQLite and PostgreSQL (the `db_url` fixture), with the fake clock: no test
sleeps. Cycles are called as the scheduler calls them (`run_cycle`).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from priorizer.db import Database, migrate
from priorizer.maintenance import jobs as maintenance_jobs
from priorizer.maintenance.jobs import RUNNER_LOCK
from priorizer.maintenance.service import slot_of
from priorizer.web.app import create_app
from tests.conftest import (
    PG_ADMIN_URL,
    FakeClock,
    create_pg_database,
    drop_pg_database,
    make_settings,
)
from tests.support.factories import asset, table_snapshot

pytestmark = pytest.mark.usefixtures("no_background_pause")


# --- Slots and the runner lock ------------------------------------------------------------------


def test_a_scheduled_slot_runs_once_and_manual_cycles_always_run(env):
    s = env()
    interval = s.policy.interval_seconds
    slot = slot_of(s.clock(), interval)

    first = s.cycle(scheduled=True)
    assert first is not None
    assert first["outcome"] == "ok"
    assert s.cycle(scheduled=True) is None  # another process ran this slot
    runs = s.runs()
    assert [(r.slot, r.outcome) for r in runs] == [(slot, "ok")]

    manual = [s.cycle(), s.cycle()]
    assert all(run is not None and run["outcome"] == "ok" for run in manual)
    runs = s.runs()
    assert [r.slot for r in runs] == [slot, None, None]
    listed = s.get("/maintenance/runs")
    assert [r["id"] for r in listed] == [r.id for r in reversed(runs)]
    assert [r["slot"] for r in listed] == [None, None, slot]

    s.clock.advance(seconds=interval - 1)  # still the same slot
    assert slot_of(s.clock(), interval) == slot
    assert s.cycle(scheduled=True) is None
    s.clock.advance(seconds=1)  # the next one
    nxt = s.cycle(scheduled=True)
    assert nxt is not None
    assert [r.slot for r in s.runs()] == [slot, None, None, slot + 1]


def test_no_cycle_while_another_process_runs_one(env):
    s = env()
    s.add(asset(1, priority=5))
    s.allocate("A", 1)
    s.clock.advance(days=30)  # plenty for a cycle to do, were it to run
    before = table_snapshot(s.database)
    other = Database(s.settings.sqlalchemy_url)  # another process's view of the same database
    try:
        with other.exclusive("maintenance", key=RUNNER_LOCK) as mine:
            assert mine
            assert s.cycle() is None
            assert s.cycle(scheduled=True) is None
            assert table_snapshot(s.database) == before
    finally:
        other.dispose()
    run = s.cycle(scheduled=True)  # the lock is free again
    assert run is not None
    assert run["steps"]["expired_leases"] == 1
    assert len(s.runs()) == 1


def test_old_runs_are_pruned_after_the_retention(env):
    s = env(snapshot_retention_days=1)
    s.cycle()
    s.clock.advance(hours=12)
    assert s.cycle()["steps"]["runs_pruned"] == 0
    s.clock.advance(hours=13)  # the first run is now 25 hours old
    latest = s.cycle()
    assert latest["steps"]["runs_pruned"] == 1
    assert len(s.runs()) == 2


# --- Health -------------------------------------------------------------------------------------


def test_health_follows_maintenance(env, monkeypatch):
    s = env()
    interval = s.settings.auto_update_interval_seconds
    assert s.client.get("/health").status_code == 200

    # No cycle yet: on time until three intervals and ten seconds after start.
    s.clock.advance(seconds=3 * interval + 10)
    assert s.client.get("/health").status_code == 200
    s.clock.advance(seconds=1)
    response = s.client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"], body["maintenance"]) == ("unavailable", True, False)
    assert "overdue" in body["reason"]
    assert s.get("/status")["system_health"] == "degraded"

    s.cycle()
    assert s.client.get("/health").json() == {
        "status": "ok",
        "database": True,
        "scheduler": True,
        "maintenance": True,
        "reason": None,
    }
    assert s.get("/status")["system_health"] == "healthy"
    s.clock.advance(seconds=3 * interval + 11)  # overdue again after the last success
    assert s.client.get("/health").status_code == 503
    s.cycle()
    assert s.client.get("/health").status_code == 200

    # A failing cycle: raised, recorded, and the service is degraded.
    def broken(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("priority refresh exploded")

    with monkeypatch.context() as patch:
        patch.setattr(maintenance_jobs, "refresh_priorities", broken)
        with pytest.raises(RuntimeError, match="exploded"):
            s.cycle()
    failed = s.runs()[-1]
    assert failed.outcome == "failed"
    assert failed.finished_at == s.clock()
    assert failed.error == "RuntimeError: priority refresh exploded"
    response = s.client.get("/health")
    assert response.status_code == 503
    assert response.json()["maintenance"] is False
    assert "failed" in response.json()["reason"]
    status = s.get("/status")
    assert status["system_health"] == "degraded"
    assert "failed" in status["health_reason"]
    assert status["last_maintenance"]["outcome"] == "failed"
    assert status["last_maintenance"]["error"] == "RuntimeError: priority refresh exploded"
    assert s.get("/maintenance/runs")[0]["outcome"] == "failed"

    run = s.cycle()  # the runner lock was let go despite the failure
    assert run is not None
    assert run["outcome"] == "ok"
    assert s.client.get("/health").status_code == 200
    status = s.get("/status")
    assert status["system_health"] == "healthy"
    assert status["last_maintenance"]["outcome"] == "ok"


def test_health_when_the_database_stops_answering(db_url, tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: a SQLite file cannot refuse connections")
    url = create_pg_database("priorizer_gone")
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def allow(yes: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(yes).lower()}'))

    def terminate_backends() -> None:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )

    try:
        migrate(url)
        settings = make_settings(url, tmp_path)
        with TestClient(create_app(settings, clock=FakeClock())) as client:
            assert client.get("/health").status_code == 200
            # Pooled connections cut (a server restart): replaced unnoticed.
            terminate_backends()
            assert client.get("/health").status_code == 200
            # The database refuses connections: unavailable, with the reason.
            allow(False)
            terminate_backends()
            for _ in range(2):  # and it stays that way
                response = client.get("/health")
                assert response.status_code == 503
                body = response.json()
                assert (body["status"], body["database"]) == ("unavailable", False)
                assert "database does not answer" in body["reason"]
            allow(True)
            response = client.get("/health")
            assert response.status_code == 200, response.text
            assert response.json()["database"] is True
    finally:
        admin.dispose()
        drop_pg_database(url)
