"""The maintenance cycle (maintenance/service.py) and what it feeds: lost nodes, priority jitter,
the refresh rotation, statistics snapshots, slots and the runner lock, health, orphaned leases.

Everything runs on SQLite and PostgreSQL (the `db_url` fixture), with the fake clock: no test
sleeps. Cycles are called as the scheduler calls them (`run_cycle`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text, update

from priorizer.allocation.models import Allocation
from priorizer.app import create_app, queue_policy
from priorizer.catalog.models import Asset
from priorizer.config import Settings
from priorizer.db import Database, migrate
from priorizer.maintenance import service as maintenance_service
from priorizer.maintenance.models import MaintenanceRun
from priorizer.maintenance.service import (
    REFRESH_CURSOR_KEY,
    RUNNER_LOCK,
    MaintenancePolicy,
    refresh_priorities,
    run_cycle,
    slot_of,
)
from priorizer.system import repo as system_repo
from tests.conftest import (
    PG_ADMIN_URL,
    FakeClock,
    create_pg_database,
    drop_pg_database,
    make_settings,
)
from tests.support.factories import add_assets, asset, table_snapshot


@dataclass
class Env:
    """One service (app, database, settings) over the test's database, on the fake clock."""

    client: TestClient
    database: Database
    settings: Settings
    clock: FakeClock

    @property
    def policy(self) -> MaintenancePolicy:
        return MaintenancePolicy.from_settings(self.settings, queue_policy(self.settings))

    def cycle(self, *, scheduled: bool = False) -> dict[str, Any] | None:
        return run_cycle(
            database=self.database, policy=self.policy, clock=self.clock, scheduled=scheduled
        )

    def add(self, *items: Any) -> None:
        add_assets(self.database, self.settings, list(items), self.clock())

    def allocate(self, node_id: str, free_space_gb: float) -> list[str]:
        response = self.client.post(
            "/allocate", json={"node_id": node_id, "free_space_gb": free_space_gb}
        )
        assert response.status_code == 200, response.text
        return sorted(lease["id"] for lease in response.json())

    def post(self, path: str, **body: Any) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def complete(self, asset_id: str, node_id: str) -> dict[str, Any]:
        return self.post("/complete", asset_id=asset_id, node_id=node_id)

    def get(self, path: str) -> Any:
        response = self.client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def asset(self, asset_id: str) -> dict[str, Any]:
        return self.get(f"/assets/{asset_id}")

    def node(self, node_id: str) -> dict[str, Any]:
        return self.get(f"/nodes/{node_id}")

    def assets(self) -> list[dict[str, Any]]:
        return self.get("/assets?limit=1000")["items"]

    def runs(self) -> list[MaintenanceRun]:
        with self.database.read() as session:
            return list(
                session.execute(select(MaintenanceRun).order_by(MaintenanceRun.id)).scalars()
            )


@pytest.fixture(autouse=True)
def no_background_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """Maintenance pauses between its SQLite transactions to let requests write
    (`Database.background_write`); no request waits in these tests, so no test sleeps."""
    monkeypatch.setattr("priorizer.db.BACKGROUND_PAUSE_MAX_SECONDS", 0.0)


@pytest.fixture
def env(start_service, clock) -> Callable[..., Env]:
    """Build the service with non-default settings: `env(replication_target=1, ...)`."""
    return lambda **overrides: Env(*start_service(**overrides), clock)


def asset_rows(database: Database) -> dict[str, Any]:
    columns = (
        Asset.id,
        Asset.base_priority,
        Asset.priority,
        Asset.rank,
        Asset.copies,
        Asset.leases,
        Asset.state,
        Asset.updated_at,
    )
    with database.read() as session:
        return {row.id: row for row in session.execute(select(*columns).order_by(Asset.id))}


# --- Lost nodes ---------------------------------------------------------------------------------


def test_a_lost_node_stops_counting_and_its_copies_come_back_when_it_returns(env):
    s = env(replication_target=1)
    s.add(
        asset(1, priority=9, size_mb=100.0),
        asset(2, priority=5, size_mb=100.0),
    )
    # A holds the only copy of asset-1; B the only copy of asset-2: both at target.
    assert s.allocate("A", 0.1) == ["asset-1"]
    assert s.complete("asset-1", "A")["copies"] == 1
    assert s.allocate("B", 0.1) == ["asset-2"]
    s.complete("asset-2", "B")
    assert s.allocate("B", 10) == []  # nobody else gets asset-1 while A's copy counts

    # B keeps asking; A is silent. Just short of NODE_LOST_DAYS (14), A still counts.
    s.clock.advance(days=7)
    assert s.allocate("B", 10) == []
    s.clock.advance(days=7, seconds=-1)
    assert s.allocate("B", 10) == []
    steps = s.cycle()["steps"]
    assert (steps["lost_nodes"], steps["copies_freed"]) == (0, 0)
    assert s.node("A")["lost"] is False
    assert s.asset("asset-1")["copies"] == 1

    s.clock.advance(seconds=2)  # A now unseen for 14 days and a second
    run = s.cycle()
    assert (run["steps"]["lost_nodes"], run["steps"]["copies_freed"]) == (1, 1)
    lost = s.node("A")
    assert lost["lost"] is True
    assert lost["lost_at"] is not None
    assert s.node("B")["lost"] is False
    freed = s.asset("asset-1")
    assert (freed["copies"], freed["leases"]) == (0, 0)
    assert freed["rank"] == freed["priority"]  # back in the queue, no holder counted
    assert s.asset("asset-2")["copies"] == 1  # B's copy is untouched
    assert s.get("/status")["lost_nodes"] == 1
    # A's copy no longer counts toward the target: B gets the asset now.
    assert s.allocate("B", 10) == ["asset-1"]
    # A second cycle does not free A's copy twice.
    steps = s.cycle()["steps"]
    assert (steps["lost_nodes"], steps["copies_freed"]) == (0, 0)
    assert s.asset("asset-1")["copies"] == 0

    # A comes back while still marked lost, and completes a new copy before the next cycle.
    s.clock.advance(minutes=1)
    s.add(asset(3, priority=7, size_mb=100.0))
    assert s.allocate("A", 0.1) == ["asset-3"]
    # A lost node's copies, old and new, count again together once maintenance sees it back.
    assert s.complete("asset-3", "A")["copies"] == 0
    assert s.get("/status")["lost_nodes"] == 1  # restored by maintenance, not by the request

    steps = s.cycle()["steps"]
    assert (steps["returned_nodes"], steps["copies_restored"]) == (1, 2)
    assert s.node("A")["lost"] is False
    assert s.node("A")["lost_at"] is None
    assert s.get("/status")["lost_nodes"] == 0
    a1, a3 = s.asset("asset-1"), s.asset("asset-3")
    assert (a1["copies"], a1["leases"], a1["rank"]) == (1, 1, None)  # A's old copy + B's lease
    assert (a3["copies"], a3["rank"]) == (1, None)  # completed while lost: counted once
    assert s.complete("asset-1", "B")["copies"] == 2
    # Nothing more to restore next time.
    steps = s.cycle()["steps"]
    assert (steps["returned_nodes"], steps["copies_restored"]) == (0, 0)
    assert s.asset("asset-3")["copies"] == 1

    # Lost again: every copy it holds, old and new, stops counting; B's stay.
    s.clock.advance(days=15)
    s.allocate("B", 10)
    steps = s.cycle()["steps"]
    assert (steps["lost_nodes"], steps["copies_freed"]) == (1, 2)
    assert s.asset("asset-1")["copies"] == 1
    assert s.asset("asset-3")["copies"] == 0
    with s.database.read() as session:
        stored = {a.id: a.copies for a in session.execute(select(Asset)).scalars()}
    assert stored == {"asset-1": 1, "asset-2": 1, "asset-3": 0}


# --- Priority jitter ----------------------------------------------------------------------------


def _jitter_catalog(s: Env) -> None:
    """30 assets, base priorities 1, 5 and 10, with 0, 1 and 2 holders, one withdrawn."""
    s.add(
        *(asset(f"p10-{i:02d}", priority=10) for i in range(10)),
        *(asset(f"p05-{i:02d}", priority=5) for i in range(10)),
        *(asset(f"p01-{i:02d}", priority=1) for i in range(10)),
    )
    assert len(s.allocate("n1", 1)) == 10  # every p10 asset: one holder each
    assert len(s.allocate("n2", 0.5)) == 5  # five of them reach the target of 2
    s.complete(s.get("/allocations?node_id=n1")["items"][0]["asset_id"], "n1")
    s.post("/assets/withdraw", asset_ids=["p05-00"])


def _check_rows(rows: dict[str, Any], before: dict[str, Any], jitter: int) -> None:
    for asset_id, row in rows.items():
        old = before[asset_id]
        assert row.base_priority == old.base_priority
        assert row.updated_at == old.updated_at
        assert (row.copies, row.leases, row.state) == (old.copies, old.leases, old.state)
        assert 1 <= row.priority <= 10
        assert abs(row.priority - row.base_priority) <= jitter
        holders = row.copies + row.leases
        if row.state == "active" and holders < 2:
            assert row.rank == row.priority - 3 * holders, asset_id
        else:
            assert row.rank is None, asset_id


def test_jitter_redraws_effective_priorities_within_one_of_the_base(env):
    s = env()
    assert s.policy.priority_jitter == 1  # the default
    _jitter_catalog(s)
    before = asset_rows(s.database)
    assert {r.base_priority for r in before.values()} == {1, 5, 10}
    assert {r.copies + r.leases for r in before.values()} == {0, 1, 2}

    seen: dict[int, Counter[int]] = {1: Counter(), 5: Counter(), 10: Counter()}
    runs = 1000
    for _ in range(runs):
        assert refresh_priorities(s.database, policy=s.policy, now=s.clock()) == 30
        rows = asset_rows(s.database)
        _check_rows(rows, before, jitter=1)
        for row in rows.values():
            seen[row.base_priority][row.priority] += 1

    assert set(seen[5]) == {4, 5, 6}
    assert set(seen[1]) == {1, 2}
    assert set(seen[10]) == {9, 10}
    # A uniform draw in [-1, 1], clamped: 1/3 each around 5; 2/3 at the bound for 1 and 10.
    draws = 10 * runs
    for value in (4, 5, 6):
        assert 0.28 < seen[5][value] / draws < 0.39, seen[5]
    assert 0.61 < seen[1][1] / draws < 0.72, seen[1]
    assert 0.61 < seen[10][10] / draws < 0.72, seen[10]


def test_jitter_two_spreads_two_either_side(env, db_url, tmp_path):
    s = env()
    _jitter_catalog(s)
    before = asset_rows(s.database)
    wide = MaintenancePolicy.from_settings(
        make_settings(db_url, tmp_path, priority_jitter=2), queue_policy(s.settings)
    )
    assert wide.priority_jitter == 2
    seen: dict[int, set[int]] = {1: set(), 5: set(), 10: set()}
    for _ in range(150):
        assert refresh_priorities(s.database, policy=wide, now=s.clock()) == 30
        rows = asset_rows(s.database)
        _check_rows(rows, before, jitter=2)
        for row in rows.values():
            seen[row.base_priority].add(row.priority)
    assert seen == {1: {1, 2, 3}, 5: {3, 4, 5, 6, 7}, 10: {8, 9, 10}}


def test_jitter_zero_changes_nothing(env):
    s = env(priority_jitter=0)
    _jitter_catalog(s)
    before = table_snapshot(s.database)["assets"]
    for _ in range(5):
        assert refresh_priorities(s.database, policy=s.policy, now=s.clock()) == 30
    run = s.cycle()
    assert run["steps"]["priorities_redrawn"] == 30
    assert table_snapshot(s.database)["assets"] == before


def test_jitter_zero_puts_jittered_priorities_back_on_their_base(env):
    s = env(priority_jitter=0)
    s.add(asset(1, priority=5), asset(2, priority=1))
    with s.database.write() as session:
        session.execute(update(Asset).values(priority=Asset.base_priority + 1))
    assert refresh_priorities(s.database, policy=s.policy, now=s.clock()) == 2
    rows = asset_rows(s.database)
    assert {(r.priority, r.rank) for r in rows.values()} == {(5, 5.0), (1, 1.0)}


# --- Refresh rotation ---------------------------------------------------------------------------


def _mark_all(database: Database, value: int) -> None:
    """Give every asset an effective priority no redraw of base 5 with jitter 1 can produce."""
    with database.write() as session:
        session.execute(update(Asset).values(priority=value))


def _redrawn(database: Database) -> list[str]:
    return sorted(i for i, row in asset_rows(database).items() if row.priority != 1)


def _cursor(database: Database) -> Any:
    with database.read() as session:
        return system_repo.get(session, key=REFRESH_CURSOR_KEY)


def test_refresh_goes_round_the_catalog_a_limit_at_a_time(env):
    s = env(priority_refresh_limit=7)
    ids = [f"asset-{n:02d}" for n in range(1, 21)]
    s.add(*(asset(f"{n:02d}", priority=5) for n in range(1, 21)))
    times_redrawn: Counter[str] = Counter()
    for call in range(20):
        _mark_all(s.database, 1)
        assert refresh_priorities(s.database, policy=s.policy, now=s.clock()) == 7
        window = [ids[(7 * call + k) % 20] for k in range(7)]
        assert _redrawn(s.database) == sorted(window), call
        assert _cursor(s.database) == window[-1]
        times_redrawn.update(window)
        if call == 2:  # 21 redraws in: every asset had its turn
            assert set(times_redrawn) == set(ids)
    assert set(times_redrawn.values()) == {7}  # 20 calls x 7 = 7 turns each, evenly

    # The scheduled cycle does the same, and says how many it redrew.
    _mark_all(s.database, 1)
    assert s.cycle()["steps"]["priorities_redrawn"] == 7
    assert _redrawn(s.database) == ids[:7]
    assert _cursor(s.database) == "asset-07"


def test_a_catalog_smaller_than_the_limit_is_redrawn_whole_once_per_call(env, monkeypatch):
    s = env(priority_refresh_limit=7)
    s.add(*(asset(f"{n:02d}", priority=5) for n in range(1, 21)))
    refresh_priorities(s.database, policy=s.policy, now=s.clock())
    assert _cursor(s.database) == "asset-07"  # a cursor in the middle of the catalog

    whole = replace(s.policy, refresh_limit=50)
    for _ in range(3):
        _mark_all(s.database, 1)
        assert refresh_priorities(s.database, policy=whole, now=s.clock()) == 20
        assert len(_redrawn(s.database)) == 20
        assert _cursor(s.database) == "asset-07"  # round once: back where it began

    # In several batches, across the end of the catalog, still each asset once.
    monkeypatch.setattr(maintenance_service, "PRIORITIES_PER_BATCH", 3)
    _mark_all(s.database, 1)
    assert refresh_priorities(s.database, policy=whole, now=s.clock()) == 20
    assert len(_redrawn(s.database)) == 20
    assert _cursor(s.database) == "asset-07"


def test_a_small_catalog_from_the_start(env):
    s = env(priority_refresh_limit=7)
    s.add(*(asset(n, priority=5) for n in range(1, 6)))
    for _ in range(3):
        _mark_all(s.database, 1)
        assert refresh_priorities(s.database, policy=s.policy, now=s.clock()) == 5
        assert len(_redrawn(s.database)) == 5
    assert s.cycle()["steps"]["priorities_redrawn"] == 5


# --- Snapshots ----------------------------------------------------------------------------------


def _stored_stats(s: Env) -> list[dict[str, Any]]:
    return [run.stats for run in s.runs() if run.outcome == "ok"]


def _check_distributions(s: Env, stats: dict[str, Any]) -> None:
    assets = s.assets()
    assert sum(stats["priority_distribution"].values()) == len(assets)
    assert stats["priority_distribution"] == {
        str(k): v for k, v in Counter(a["priority"] for a in assets).items()
    }
    assert stats["copies_distribution"] == {
        str(k): v for k, v in Counter(a["copies"] for a in assets).items()
    }
    assert stats["states"] == dict(Counter(a["state"] for a in assets))
    assert stats["catalog"]["assets"] == len(assets)
    assert stats["catalog"]["copies"] == sum(a["copies"] for a in assets)
    assert stats["catalog"]["total_priority_score"] == sum(a["priority"] for a in assets)


def test_a_cycle_snapshots_the_catalog_and_counts_lease_events_between_cycles(env):
    s = env()
    s.add(*(asset(n, priority=p, size_mb=100.0) for n, p in enumerate([9, 9, 7, 5, 5, 2, 2, 1])))
    # Before the first cycle: 5 leases opened, 2 completed, 1 failed.
    a_got = s.allocate("A", 0.3)
    assert len(a_got) == 3
    s.complete(a_got[0], "A")
    s.complete(a_got[1], "A")
    s.post("/fail", asset_id=a_got[2], node_id="A", reason="404 at the source")
    b_got = s.allocate("B", 0.2)
    assert len(b_got) == 2

    first = s.cycle()
    stats = first["stats"]
    status = s.get("/status")
    assert status["last_snapshot"] == stats
    assert status["last_maintenance"]["id"] == first["id"]
    _check_distributions(s, stats)
    assert stats["lease_totals"] == {
        "opened": 5,
        "completed": 2,
        "failed": 1,
        "expired": 0,
        "released": 0,
    }
    assert stats["since_last_cycle"] is None  # nothing to compare with yet
    assert stats["open_leases"] == 2
    assert stats["reserved_mb"] == 200.0
    assert stats["fleet"]["nodes"] == 2
    assert stats["fleet"]["active_nodes"] == 2
    assert stats["fleet"]["lost_nodes"] == 0
    assert stats["fleet"]["free_space_mb"] == pytest.approx(0.5 * 1024)
    assert stats["utilisation"] == pytest.approx(200.0 / 512)

    # Between the cycles: B releases one lease and lets the other expire; A takes 2 more
    # and completes one of them.
    s.post("/release", asset_id=b_got[0], node_id="B")
    s.clock.advance(hours=25)
    a_more = s.allocate("A", 0.2)
    assert len(a_more) == 2
    s.complete(a_more[0], "A")

    second = s.cycle()
    stats = second["stats"]
    assert second["steps"]["nodes_charged_for_expirations"] == 1
    assert s.get("/status")["last_snapshot"] == stats
    _check_distributions(s, stats)
    assert stats["lease_totals"] == {
        "opened": 7,
        "completed": 3,
        "failed": 1,
        "expired": 1,
        "released": 1,
    }
    assert stats["since_last_cycle"] == {
        "opened": 2,
        "completed": 1,
        "failed": 0,
        "expired": 1,
        "released": 1,
    }
    assert stats["open_leases"] == 1
    assert _stored_stats(s) == [first["stats"], second["stats"]]

    # A quiet interval: every delta is zero.
    s.clock.advance(minutes=2)
    third = s.cycle()["stats"]
    assert set(third["since_last_cycle"].values()) == {0}
    assert third["lease_totals"] == stats["lease_totals"]


def _expire_complete_late_expire_again(s: Env) -> tuple[dict[str, Any], dict[str, Any]]:
    """A's lease expires (cycle 1), A completes it late, then lets a second lease expire
    (cycle 2). Returns both cycles' records."""
    s.add(asset(1, priority=9, size_mb=100.0), asset(2, priority=5, size_mb=100.0))
    assert s.allocate("A", 0.1) == ["asset-1"]
    s.clock.advance(hours=25)
    first = s.cycle()
    assert first["steps"]["expired_leases"] == 1
    assert first["steps"]["nodes_charged_for_expirations"] == 1
    node = s.node("A")
    assert (node["expirations"], node["lease_cap"]) == (1, 100)

    done = s.complete("asset-1", "A")  # the copy arrives after the lease expired
    assert done["late"] is True

    assert s.allocate("A", 0.1) == ["asset-2"]
    s.clock.advance(hours=25)
    second = s.cycle()
    assert second["steps"]["expired_leases"] == 1
    return first, second


def test_an_expiry_after_a_late_completion_is_still_charged(env):
    """`complete` turns a late lease from `expired` into `completed`, so the node's expired
    leases drop below its stored `expirations`; `account_expirations` (new = expired leases -
    stored count) must still see the next expiry."""
    s = env(lease_cap_initial=200)
    _first, second = _expire_complete_late_expire_again(s)
    assert second["steps"]["nodes_charged_for_expirations"] == 1
    assert s.node("A")["lease_cap"] == 50  # halved again: hoarding does not pay


def test_a_late_completion_takes_its_expiry_off_the_totals(env):
    """docs/maintenance.md: a late completion turns an expired lease into a copy, so it takes
    one off the node's `expirations`. The snapshot's totals follow the node counters, and
    `since_last_cycle` is their net change: the interval's one new expiry and the late
    completion of the earlier one cancel out."""
    s = env(lease_cap_initial=200)
    first, second = _expire_complete_late_expire_again(s)
    assert first["stats"]["lease_totals"]["expired"] == 1
    node = s.node("A")
    assert (node["expirations"], node["completions"]) == (1, 1)
    assert second["stats"]["lease_totals"] == {
        "opened": 2,
        "completed": 1,
        "failed": 0,
        "expired": 1,
        "released": 0,
    }
    assert second["stats"]["since_last_cycle"] == {
        "opened": 1,
        "completed": 1,
        "failed": 0,
        "expired": 0,
        "released": 0,
    }


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
        patch.setattr(maintenance_service, "refresh_priorities", broken)
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


# --- Orphaned leases ----------------------------------------------------------------------------


def test_a_cycle_closes_leases_on_withdrawn_assets(env):
    s = env()
    s.add(asset(1, priority=9, size_mb=100.0), asset(2, priority=5, size_mb=100.0))
    assert s.allocate("A", 0.2) == ["asset-1", "asset-2"]
    assert s.post("/assets/withdraw", asset_ids=["asset-1"])["changed"] == 1
    # Withdrawing alone leaves the lease open: maintenance closes it.
    assert len(s.asset("asset-1")["open_leases"]) == 1

    run = s.cycle()
    assert run["steps"]["orphaned_leases_closed"] == 1
    withdrawn = s.asset("asset-1")
    assert withdrawn["open_leases"] == []
    assert (withdrawn["leases"], withdrawn["rank"], withdrawn["state"]) == (0, None, "withdrawn")
    (closed,) = withdrawn["history"]
    assert closed["status"] == "released"
    assert "withdrawn" in closed["note"]
    assert closed["closed_at"] is not None
    # The lease on the asset still in the catalog stays open.
    other = s.asset("asset-2")
    assert (other["leases"], len(other["open_leases"])) == (1, 1)
    assert s.get("/status")["active_allocations"] == 1
    assert s.cycle()["steps"]["orphaned_leases_closed"] == 0
    with s.database.read() as session:
        statuses = session.execute(
            select(Allocation.status, func.count()).group_by(Allocation.status)
        ).all()
    assert dict(statuses) == {"allocated": 1, "released": 1}


def test_the_refresh_passes_over_assets_another_transaction_holds(env, db_url):
    """PostgreSQL: the refresh locks its rows in id order and skips those held elsewhere, so
    it neither waits for a writer holding an asset nor deadlocks with one that goes on to lock
    more assets in id order (found in review: it used to lock in table order)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has one writer at a time, no row locks")
    s = env(priority_jitter=3)
    add_assets(s.database, s.settings, [asset(n, priority=5) for n in range(10, 40)], s.clock())
    engine = create_engine(db_url)
    try:
        with engine.connect() as other:
            other.execute(text("SET lock_timeout = '5s'"))
            # Another writer (say, /release putting an asset back) holds the first asset...
            other.execute(text("UPDATE assets SET leases = leases WHERE id = 'asset-10'"))
            result: list[int] = []
            refresh = threading.Thread(
                target=lambda: result.append(
                    refresh_priorities(s.database, policy=s.policy, now=s.clock())
                )
            )
            refresh.start()
            refresh.join(timeout=20)
            waited = refresh.is_alive()
            # ...and goes on to the next one (it would deadlock with a refresh holding it).
            other.execute(text("UPDATE assets SET leases = leases WHERE id = 'asset-11'"))
            other.commit()
            refresh.join()
    finally:
        engine.dispose()
    assert not waited, "the refresh waited for a row another transaction held"
    rows = asset_rows(s.database)
    assert result == [30]
    assert rows["asset-10"].priority == 5  # passed over this round
    assert any(row.priority != 5 for row in rows.values())  # the others were redrawn


def test_a_thousand_whole_cycles_never_move_a_base_priority(env):
    """The issue's figure, through whole cycles (not only the refresh step): after each of
    1,000 cycles, every base priority is what was imported and every effective one is within
    1-10 and one of its base, with the rank that goes with it."""
    s = env()
    _jitter_catalog(s)
    violations = select(func.count()).where(
        (Asset.priority < 1)
        | (Asset.priority > 10)
        | (func.abs(Asset.priority - Asset.base_priority) > 1)
        | (
            (Asset.rank.is_not(None))
            & (Asset.rank != Asset.priority - 3 * (Asset.copies + Asset.leases))
        )
    )
    bases = {row.id: row.base_priority for row in asset_rows(s.database).values()}
    moved = 0
    for _ in range(1000):
        s.clock.advance(seconds=s.policy.interval_seconds)
        record = s.cycle()
        assert record is not None and record["outcome"] == "ok"
        with s.database.read() as session:
            assert session.execute(violations).scalar_one() == 0
            moved += session.execute(
                select(func.count()).where(Asset.priority != Asset.base_priority)
            ).scalar_one()
    assert {row.id: row.base_priority for row in asset_rows(s.database).values()} == bases
    assert moved > 1000  # the effective priorities did move, most cycles
