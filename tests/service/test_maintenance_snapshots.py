"""The maintenance cycle (maintenance/service.py) and its statistics snapshots.

Everything runs on SQLite and PostgreSQL (the `db_url` fixture), with the fake clock: no test
sleeps. Cycles are called as the scheduler calls them (`run_cycle`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.support.factories import asset
from tests.support.maintenance import Env

pytestmark = pytest.mark.usefixtures("no_background_pause")


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
