"""Prometheus metrics at `GET /metrics` (metrics.py): this process's counters, moved only by what
the database committed, and gauges read from the database at each scrape.

The counters are process-global (every test in this process moves them), so every counter check
compares a scrape before with a scrape after: never an absolute value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from priorizer import metrics
from priorizer.allocation import lifecycle
from priorizer.catalog.models import Asset
from priorizer.db import Database
from priorizer.maintenance import jobs as maintenance_jobs
from priorizer.maintenance.jobs import run_cycle
from priorizer.queue.policy import queue_policy
from priorizer.status import service as system_service
from tests.support.api import Api
from tests.support.factories import asset
from tests.support.metrics_scrape import Scrape, families

MB = 1024 * 1024
SUM_A = "a" * 64
SUM_B = "b" * 64
LEASE_EVENTS = ("allocations", "completions", "failures", "releases", "expirations", "renewals")


def lease_events(scrape: Scrape) -> dict[str, float]:
    return {name: scrape.value(f"priorizer_{name}_total") for name in LEASE_EVENTS}


def moved(before: Scrape, after: Scrape) -> dict[str, float]:
    """How far each lease-event counter moved between two scrapes (only those that moved)."""
    old, new = lease_events(before), lease_events(after)
    return {name: new[name] - old[name] for name in LEASE_EVENTS if new[name] != old[name]}


@pytest.fixture(autouse=True)
def no_background_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """Maintenance pauses between its SQLite transactions (`Database.background_write`); no
    request waits here, so no test sleeps."""
    monkeypatch.setattr("priorizer.db.database.BACKGROUND_PAUSE_MAX_SECONDS", 0.0)


@pytest.fixture
def api(client, database, settings, clock) -> Api:
    """The service with the default settings (REPLICATION_TARGET 2, FAILURE_THRESHOLD 3...)."""
    return Api(client, database, settings, clock)


@pytest.fixture
def service(start_service, clock) -> Callable[..., Api]:
    """The service with non-default settings: `service(replication_target=1, ...)`."""
    return lambda **overrides: Api(*start_service(**overrides), clock)


# --- The exposition -----------------------------------------------------------------------------


def test_the_exposition_parses_with_every_family_typed(api):
    api.add(asset(1))
    scrape = api.scrape()

    kinds = families(scrape.text)
    for name in LEASE_EVENTS:
        assert kinds[f"priorizer_{name}"] == "counter"
        assert scrape.get(f"priorizer_{name}_total") is not None  # exposed from the start
    assert kinds["priorizer_http_requests"] == "counter"
    assert kinds["priorizer_http_request_duration_seconds"] == "histogram"
    assert kinds["priorizer_maintenance_cycles"] == "counter"
    assert kinds["priorizer_maintenance_cycle_duration_seconds"] == "histogram"
    for gauge in (
        "priorizer_database_up",
        "priorizer_assets",
        "priorizer_assets_with_copy",
        "priorizer_assets_at_target",
        "priorizer_asset_bytes",
        "priorizer_asset_bytes_with_copy",
        "priorizer_asset_bytes_at_target",
        "priorizer_copies",
        "priorizer_open_leases",
        "priorizer_nodes",
        "priorizer_nodes_lost",
        "priorizer_replication_target",
    ):
        assert kinds[gauge] == "gauge", gauge
    assert scrape.get("priorizer_database_up") == 1
    assert scrape.get("priorizer_replication_target") == api.settings.replication_target
    # No cycle has run: no "last cycle" figures rather than made-up ones.
    assert not any(name.startswith("priorizer_maintenance_last") for name in kinds)
    assert "# HELP priorizer_open_leases " in scrape.text


def test_an_empty_catalog_exposes_zeros_and_no_per_priority_series(api):
    scrape = api.scrape()

    assert scrape.series("priorizer_assets") == {}
    assert scrape.series("priorizer_assets_with_copy") == {}
    for name in ("copies", "open_leases", "nodes", "nodes_lost"):
        assert scrape.get(f"priorizer_{name}") == 0, name


def test_a_database_that_does_not_answer_is_a_figure_not_a_failed_scrape(
    api, monkeypatch: pytest.MonkeyPatch
):
    api.add(asset(1))
    assert api.scrape().get("priorizer_database_up") == 1

    def down(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
        raise ConnectionError("database is gone")

    monkeypatch.setattr(system_service, "figures", down)
    scrape = api.scrape()

    assert scrape.get("priorizer_database_up") == 0
    assert scrape.series("priorizer_assets") == {}
    assert scrape.get("priorizer_open_leases") is None
    assert scrape.get("priorizer_allocations_total") is not None  # the counters are still there


# --- Lease events: counted by the exact amount, once committed ---------------------------------


def test_allocations_count_the_leases_granted(api):
    api.add(*(asset(n, size_mb=100.0) for n in range(5)))
    before = api.scrape()

    assert len(api.allocate_sorted("node-a", 0.3)) == 3  # 307 MB: three files of 100 MB
    middle = api.scrape()
    assert len(api.allocate_sorted("node-b", 0.1)) == 1
    assert api.allocate_sorted("node-c", 0.01) == []  # 10 MB: nothing fits, nothing counted
    after = api.scrape()

    assert moved(before, middle) == {"allocations": 3}
    assert moved(middle, after) == {"allocations": 1}
    assert api.lease_statuses() == {"allocated": 4}


def test_completions_count_once_and_a_retry_not_again(api):
    api.add(asset(1), asset(2))
    assert api.allocate_sorted("node-a") == ["asset-1", "asset-2"]
    before = api.scrape()

    first = api.completed("asset-1", "node-a", checksum_sha256=SUM_A)
    once = api.scrape()
    retry = api.completed("asset-1", "node-a", checksum_sha256=SUM_A)
    retry_without_checksum = api.completed("asset-1", "node-a")
    conflicting = api.post("/complete", asset_id="asset-1", node_id="node-a", checksum_sha256=SUM_B)
    retried = api.scrape()
    api.completed("asset-2", "node-a")
    after = api.scrape()

    assert first["already_recorded"] is False
    assert retry["already_recorded"] is True
    assert retry_without_checksum["already_recorded"] is True
    assert conflicting.status_code == 409
    assert moved(before, once) == {"completions": 1}
    assert moved(once, retried) == {}
    assert moved(retried, after) == {"completions": 1}


def test_failures_and_releases_count_one_each(api):
    api.add(asset(1), asset(2), asset(3))
    assert api.allocate_sorted("node-a") == ["asset-1", "asset-2", "asset-3"]
    before = api.scrape()

    api.ok("/fail", asset_id="asset-1", node_id="node-a", reason="HTTP 404")
    failed = api.scrape()
    api.ok("/release", asset_id="asset-2", node_id="node-a")
    released = api.scrape()

    assert moved(before, failed) == {"failures": 1}
    assert moved(failed, released) == {"releases": 1}
    assert api.lease_statuses() == {"failed": 1, "released": 1, "allocated": 1}


def test_renewals_count_the_leases_renewed(api, clock):
    api.add(*(asset(n, priority=9 - n) for n in range(3)))
    api.allocate_sorted("node-a")
    assert api.allocate_sorted("node-b") == ["asset-0", "asset-1", "asset-2"]  # 2 copies wanted
    clock.advance(hours=1)
    before = api.scrape()

    assert api.ok("/renew", node_id="node-a")["renewed"] == 3
    all_renewed = api.scrape()
    listed = api.ok("/renew", node_id="node-b", asset_ids=["asset-1", "asset-404"])
    some_renewed = api.scrape()
    clock.advance(hours=25)  # node-b's other leases are past their expiry: none is renewed
    assert api.ok("/renew", node_id="node-b", asset_ids=["asset-0", "asset-2"])["renewed"] == 0
    none_renewed = api.scrape()

    assert (listed["renewed"], listed["not_renewed"]) == (1, ["asset-404"])
    assert moved(before, all_renewed) == {"renewals": 3}
    assert moved(all_renewed, some_renewed) == {"renewals": 1}
    assert moved(some_renewed, none_renewed) == {}


def test_expirations_closed_by_an_allocation_request_count_each_lease_once(api, clock):
    api.add(*(asset(n, size_mb=100.0) for n in range(6)))
    assert len(api.allocate_sorted("node-a", 0.3)) == 3
    assert len(api.allocate_sorted("node-b", 0.2)) == 2
    clock.advance(hours=23)
    assert len(api.allocate_sorted("node-c", 0.1)) == 1  # not due yet: nothing expires
    clock.advance(hours=2)  # node-a's and node-b's leases are due, node-c's are not
    before = api.scrape()

    # node-a's request closes its own due leases, then anyone's: five in all, each once.
    granted = api.allocate_sorted("node-a", 0.3)
    after = api.scrape()

    assert moved(before, after) == {"expirations": 5, "allocations": len(granted)}
    assert api.lease_statuses()["expired"] == 5
    assert api.maintenance()["steps"]["expired_leases"] == 0  # none left for maintenance
    assert moved(after, api.scrape()) == {}


def test_expirations_closed_by_maintenance_are_counted_with_the_cycle(api, clock):
    api.add(*(asset(n, size_mb=100.0) for n in range(4)))
    assert len(api.allocate_sorted("node-a", 0.4)) == 4
    clock.advance(seconds=api.settings.allocation_expiry_seconds + 1)
    before = api.scrape()

    record = api.maintenance()
    after = api.scrape()

    assert record["steps"]["expired_leases"] == 4
    assert moved(before, after) == {"expirations": 4}
    cycles = "priorizer_maintenance_cycles_total"
    assert after.value(cycles, outcome="ok") - before.value(cycles, outcome="ok") == 1
    assert after.value(cycles, outcome="failed") == before.value(cycles, outcome="failed")
    count = "priorizer_maintenance_cycle_duration_seconds_count"
    assert after.value(count) - before.value(count) == 1


def test_a_late_completion_counts_as_a_completion_after_its_expiry(api, clock):
    api.add(asset(1))
    api.allocate_sorted("node-a")
    clock.advance(hours=25)
    before = api.scrape()

    assert api.allocate_sorted("node-b") == ["asset-1"]  # closes node-a's due lease
    expired = api.scrape()
    done = api.completed("asset-1", "node-a")
    after = api.scrape()

    assert done["late"] is True
    assert moved(before, expired) == {"expirations": 1, "allocations": 1}
    assert moved(expired, after) == {"completions": 1}


def test_refused_requests_move_no_lease_counter(api):
    api.add(asset(1), asset(2))
    api.allocate_sorted("node-a")
    api.completed("asset-1", "node-a", checksum_sha256=SUM_A)
    before = api.scrape()

    refused = {
        "allocate: negative space": api.post("/allocate", node_id="node-b", free_space_gb=-1),
        "allocate: bad node id": api.post("/allocate", node_id="<b>", free_space_gb=1),
        "complete: unknown node": api.post("/complete", asset_id="asset-2", node_id="node-zz"),
        "complete: no lease": api.post("/complete", asset_id="asset-9", node_id="node-a"),
        "complete: other checksum": api.post(
            "/complete", asset_id="asset-1", node_id="node-a", checksum_sha256=SUM_B
        ),
        "fail: no open lease": api.post("/fail", asset_id="asset-1", node_id="node-a", reason="x"),
        "release: no open lease": api.post("/release", asset_id="asset-1", node_id="node-a"),
        "renew: unknown node": api.post("/renew", node_id="node-zz"),
        "renew: bad body": api.post("/renew", node_id="node-a", asset_ids="asset-2"),
    }
    after = api.scrape()

    assert {name: r.status_code for name, r in refused.items()} == {
        "allocate: negative space": 422,
        "allocate: bad node id": 422,
        "complete: unknown node": 404,
        "complete: no lease": 404,
        "complete: other checksum": 409,
        "fail: no open lease": 404,
        "release: no open lease": 404,
        "renew: unknown node": 404,
        "renew: bad body": 422,
    }
    assert moved(before, after) == {}
    requests = "priorizer_http_requests_total"
    for route, status, times in (
        ("/allocate", "422", 2),
        ("/complete", "404", 2),
        ("/complete", "409", 1),
        ("/fail", "404", 1),
        ("/release", "404", 1),
        ("/renew", "404", 1),
        ("/renew", "422", 1),
    ):
        labels = {"method": "POST", "route": route, "status": status}
        assert after.value(requests, **labels) - before.value(requests, **labels) == times, labels


def test_events_of_a_rolled_back_transaction_are_not_counted(api, clock):
    """Work done in a transaction that rolls back (a failed or retried write) never happened:
    its events are forgotten, and counted when the work is done again and committed."""
    api.add(asset(1), asset(2))
    api.allocate_sorted("node-a")
    clock.advance(hours=25)
    before = api.scrape()

    with pytest.raises(RuntimeError, match="after the work"), api.database.write() as session:
        closed = lifecycle.expire_due(
            session, queue=queue_policy(api.settings), now=clock(), limit=100
        )
        assert closed == 2
        metrics.tally(session, "allocations", 7)
        raise RuntimeError("failed after the work")
    rolled_back = api.scrape()

    assert moved(before, rolled_back) == {}
    assert api.lease_statuses() == {"allocated": 2}  # the database forgot it too

    api.allocate_sorted("node-b", 0.01)  # nothing fits; the due leases are closed, and counted
    assert moved(rolled_back, api.scrape()) == {"expirations": 2}


def test_a_session_reused_after_a_rollback_does_not_carry_the_forgotten_events(api):
    """`tally` is counted at the session's next commit, never after a rollback, even when the
    same session goes on to commit other work."""
    before = api.scrape()
    with Session(api.database.read_engine) as session:
        session.execute(text("SELECT 1"))
        metrics.tally(session, "failures", 3)
        session.rollback()
        session.execute(text("SELECT 1"))
        metrics.tally(session, "releases", 2)
        session.commit()
        session.execute(text("SELECT 1"))
        metrics.tally(session, "renewals", 0)  # nothing to count
        session.commit()

    assert moved(before, api.scrape()) == {"releases": 2}


# --- Requests: by route template ----------------------------------------------------------------


def test_requests_are_counted_by_route_template_and_unknown_paths_share_one_label(api):
    api.add(asset("with/slash"))
    api.allocate_sorted("node-a")
    before = api.scrape()

    assert api.client.get("/nodes/node-a").status_code == 200
    assert api.client.get("/nodes/node-b").status_code == 404
    assert api.client.get("/nodes/node-a").status_code == 200
    assert api.client.get("/assets/asset-with/slash").status_code == 200
    assert api.client.get("/no-such-page").status_code == 404
    assert api.client.get("/another/unknown/path").status_code == 404
    after = api.scrape()

    requests = "priorizer_http_requests_total"

    def delta(route: str, status: str, method: str = "GET") -> float:
        labels = {"method": method, "route": route, "status": status}
        return after.value(requests, **labels) - before.value(requests, **labels)

    assert delta("/nodes/{node_id}", "200") == 2
    assert delta("/nodes/{node_id}", "404") == 1
    assert delta("/assets/{asset_id:path}", "200") == 1
    assert delta(metrics.UNMATCHED_ROUTE, "404") == 2
    assert delta("/metrics", "200") == 1  # the scrape before this one
    seconds = "priorizer_http_request_duration_seconds_count"
    assert (
        after.value(seconds, method="GET", route="/nodes/{node_id}")
        - before.value(seconds, method="GET", route="/nodes/{node_id}")
        == 3
    )
    routes = {dict(labels)["route"] for labels in after.series(requests)}
    for concrete in ("/nodes/node-a", "/nodes/node-b", "/no-such-page", "/another/unknown/path"):
        assert concrete not in routes
    assert not any("asset-with" in route for route in routes)


def test_requests_to_matched_routes_that_are_not_api_routes_are_not_counted_as_unmatched(api):
    before = api.scrape()

    assert api.client.get("/static/dashboard.css").status_code == 200
    assert api.client.get("/openapi.json").status_code == 200
    after = api.scrape()

    requests = "priorizer_http_requests_total"
    unmatched = {"method": "GET", "route": metrics.UNMATCHED_ROUTE, "status": "200"}
    assert after.value(requests, **unmatched) == before.value(requests, **unmatched)
    routes = {dict(labels)["route"] for labels in after.series(requests)}
    assert "/static/dashboard.css" not in routes  # a template, not the file's path


# --- Gauges: the database's figures -------------------------------------------------------------


def _asset_truth(database: Database) -> dict[tuple[str, str], float]:
    """(base priority, state) -> assets, straight from the table."""
    with database.read() as session:
        query = select(Asset.base_priority, Asset.state, func.count()).group_by(
            Asset.base_priority, Asset.state
        )
        return {(str(p), s): n for p, s, n in session.execute(query)}


def test_gauges_equal_the_catalog_leases_and_nodes(service):
    s = service(failure_threshold=1)  # one failure makes an asset unreachable
    s.add(
        asset("9a", priority=9, size_mb=100.0),
        asset("9b", priority=9, size_mb=300.0),
        asset("9c", priority=9, size_mb=None),
        asset("5a", priority=5, size_mb=50.0),
        asset("5b", priority=5, size_mb=70.0),
        asset("5c", priority=5, size_mb=80.0),
        asset("2a", priority=2, size_mb=10.0),
        asset("2b", priority=2, size_mb=20.0),
    )
    assert s.ok("/assets/withdraw", asset_ids=["asset-2b"])["changed"] == 1
    held = s.allocate_sorted("node-a")  # everything handed out: 7 assets
    assert len(held) == 7
    assert s.allocate_sorted("node-b", 0.1) == ["asset-9a"]
    s.completed("asset-9a", "node-a")
    s.completed("asset-9a", "node-b")  # 9a: at the target of 2
    s.completed("asset-9c", "node-a")  # 9c: one copy, unknown size
    s.completed("asset-5a", "node-a")  # 5a: one copy
    s.ok("/fail", asset_id="asset-5b", node_id="node-a", reason="HTTP 404")  # unreachable
    s.allocate_sorted("node-c", 0.001)  # a third node, holding nothing

    scrape = s.scrape()

    expected_assets = {
        ("9", "active"): 3,
        ("5", "active"): 2,
        ("5", "unreachable"): 1,
        ("2", "active"): 1,
        ("2", "withdrawn"): 1,
    }
    got = {
        (dict(labels)["priority"], dict(labels)["state"]): value
        for labels, value in scrape.series("priorizer_assets").items()
    }
    assert got == expected_assets
    assert got == _asset_truth(s.database)
    assert scrape.by("priorizer_assets_with_copy", "priority") == {"9": 2, "5": 1, "2": 0}
    assert scrape.by("priorizer_assets_at_target", "priority") == {"9": 1, "5": 0, "2": 0}
    assert scrape.by("priorizer_asset_bytes", "priority") == {
        "9": 400 * MB,  # the asset of unknown size adds nothing
        "5": 200 * MB,
        "2": 30 * MB,  # withdrawn assets still count
    }
    assert scrape.by("priorizer_asset_bytes_with_copy", "priority") == {
        "9": 100 * MB,
        "5": 50 * MB,
        "2": 0,
    }
    assert scrape.by("priorizer_asset_bytes_at_target", "priority") == {
        "9": 100 * MB,
        "5": 0,
        "2": 0,
    }
    # node-a still holds 9b, 5c and 2a; a withdrawn asset was never handed out.
    assert scrape.get("priorizer_open_leases") == 3
    assert scrape.get("priorizer_copies") == 4
    assert scrape.get("priorizer_nodes") == 3
    assert scrape.get("priorizer_nodes_lost") == 0
    status = s.status()
    assert (status["active_allocations"], status["copies"], status["nodes"]) == (3, 4, 3)
    assert sum(got.values()) == status["assets"]
    assert (status["assets_with_a_copy"], status["assets_at_target"]) == (3, 1)


def test_gauges_follow_the_database_from_one_scrape_to_the_next(api):
    api.add(asset(1, priority=7), asset(2, priority=7))
    first = api.scrape()
    api.allocate_sorted("node-a")
    api.completed("asset-1", "node-a")
    second = api.scrape()

    assert (first.get("priorizer_open_leases"), second.get("priorizer_open_leases")) == (0, 1)
    assert (first.get("priorizer_copies"), second.get("priorizer_copies")) == (0, 1)
    assert (first.get("priorizer_nodes"), second.get("priorizer_nodes")) == (0, 1)
    assert first.by("priorizer_assets_with_copy", "priority") == {"7": 0}
    assert second.by("priorizer_assets_with_copy", "priority") == {"7": 1}


def test_assets_are_counted_by_base_priority_not_the_jittered_one(service):
    s = service(priority_jitter=1)
    s.add(*(asset(f"{n:02}", priority=5) for n in range(30)))
    s.maintenance()  # redraws effective priorities within one of the base

    listed = s.client.get("/assets", params={"limit": 100}).json()["items"]
    assert {a["base_priority"] for a in listed} == {5}
    assert {a["priority"] for a in listed} != {5}  # some were moved: the test means something
    scrape = s.scrape()
    assert scrape.series("priorizer_assets") == {
        frozenset({("priority", "5"), ("state", "active")}): 30
    }
    assert scrape.by("priorizer_assets_with_copy", "priority") == {"5": 0}


# --- Maintenance --------------------------------------------------------------------------------


def test_the_last_cycle_gauges_appear_after_a_cycle(api, clock):
    assert api.scrape().get("priorizer_maintenance_last_success") is None

    record = api.maintenance()
    scrape = api.scrape()

    assert scrape.get("priorizer_maintenance_last_success") == 1
    assert scrape.get("priorizer_maintenance_last_finished_timestamp_seconds") == (
        record["finished_at"].timestamp()
    )
    assert record["finished_at"] == clock()
    last = api.status()["last_maintenance"]
    assert scrape.get("priorizer_maintenance_last_duration_seconds") == pytest.approx(
        last["duration_seconds"]
    )
    assert scrape.get("priorizer_maintenance_last_duration_seconds") >= 0


def test_a_failed_cycle_sets_last_success_to_zero_and_is_counted_as_failed(
    api, clock, monkeypatch: pytest.MonkeyPatch
):
    api.maintenance()
    before = api.scrape()
    clock.advance(minutes=2)

    def broken(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("priority refresh exploded")

    with monkeypatch.context() as patch:
        patch.setattr(maintenance_jobs, "refresh_priorities", broken)
        with pytest.raises(RuntimeError, match="exploded"):
            run_cycle(
                database=api.database,
                policy=api.client.app.state.maintenance,
                clock=clock,
            )
    failed = api.scrape()
    clock.advance(minutes=2)
    api.maintenance()
    recovered = api.scrape()

    cycles = "priorizer_maintenance_cycles_total"
    assert failed.value(cycles, outcome="failed") - before.value(cycles, outcome="failed") == 1
    assert failed.value(cycles, outcome="ok") == before.value(cycles, outcome="ok")
    assert failed.get("priorizer_maintenance_last_success") == 0
    assert failed.get("priorizer_maintenance_last_finished_timestamp_seconds") == (
        clock().timestamp() - 120
    )
    assert recovered.value(cycles, outcome="ok") - failed.value(cycles, outcome="ok") == 1
    assert recovered.get("priorizer_maintenance_last_success") == 1
    assert recovered.get("priorizer_maintenance_last_finished_timestamp_seconds") == (
        clock().timestamp()
    )


def test_lost_nodes_are_counted_once_maintenance_marks_them(service, clock):
    s = service(node_lost_days=1)
    s.add(asset(1, priority=9), asset(2, priority=5))
    assert s.allocate_sorted("node-a", 0.1) == ["asset-1"]
    s.completed("asset-1", "node-a")
    clock.advance(days=2)
    s.allocate_sorted("node-b", 0.1)  # seen now; node-a is not
    assert s.scrape().get("priorizer_nodes_lost") == 0  # not until a cycle marks it

    s.maintenance()
    scrape = s.scrape()

    assert scrape.get("priorizer_nodes_lost") == 1 == s.status()["lost_nodes"]
    assert scrape.get("priorizer_nodes") == 2
    assert scrape.get("priorizer_copies") == 0  # a lost node's copy does not count
