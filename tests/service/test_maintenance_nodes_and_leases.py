"""The maintenance cycle (maintenance/service.py), nodes and leases: lost nodes, leases orphaned
by a withdrawal.

Everything runs on SQLite and PostgreSQL (the `db_url` fixture), with the fake clock: no test
sleeps. Cycles are called as the scheduler calls them (`run_cycle`).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from priorizer.allocation.models import Allocation
from priorizer.catalog.models import Asset
from tests.support.factories import asset

pytestmark = pytest.mark.usefixtures("no_background_pause")


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
