"""A lease's life after /allocate (allocation/lifecycle.py, node/standing.py), through HTTP:
completed into a copy, failed, renewed, expired, orphaned by a withdrawal."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.api import Api
from tests.support.factories import asset

SUM_A = "a" * 64
SUM_B = "b" * 64
MAGNET = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=file-1.zip"
JSON_HEADERS = {"content-type": "application/json"}


@pytest.fixture
def api(client, database, settings, clock) -> Api:
    """The service with the default settings (REPLICATION_TARGET 2, FAILURE_THRESHOLD 3...)."""
    return Api(client, database, settings, clock, cycles_on_app_database=True)


@pytest.fixture
def service(start_service, clock) -> Callable[..., Api]:
    """Build the service with non-default settings: `service(replication_target=1, ...)`."""
    return lambda **overrides: Api(*start_service(**overrides), clock, cycles_on_app_database=True)


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- Completion: a lease becomes a copy ---------------------------------------------------------


def test_completion_turns_the_lease_into_a_copy(api, clock):
    api.add(asset(1))
    [lease] = api.client.post("/allocate", json={"node_id": "node-a", "free_space_gb": 10}).json()
    clock.advance(hours=2)

    done = api.completed(
        "asset-1", "node-a", checksum_sha256=SUM_A, magnet_link=MAGNET, size_mb=100
    )

    assert done == {
        "status": "success",
        "message": "Copy recorded",
        "allocation_id": lease["allocation_id"],
        "copies": 1,
        "conflicting_copies": False,
        "already_recorded": False,
        "late": False,
        "disputed": False,
        "dispute": None,
        "disputed_copies": 0,
        "unreachable": False,
    }
    detail = api.asset("asset-1")
    assert (detail["copies"], detail["leases"], detail["open_leases"]) == (1, 0, [])
    [holder] = detail["holders"]
    assert holder["allocation_id"] == lease["allocation_id"]
    assert (holder["node_id"], holder["status"]) == ("node-a", "completed")
    assert (holder["checksum_sha256"], holder["magnet_link"]) == (SUM_A, MAGNET)
    assert at(holder["closed_at"]) == clock()
    assert detail["checksum_sha256"] == SUM_A
    [row] = api.allocations(asset_id="asset-1")
    assert (row["status"], row["checksum_sha256"], row["magnet_link"]) == (
        "completed",
        SUM_A,
        MAGNET,
    )
    node = api.node("node-a")
    assert (node["completions"], node["copies"], node["open_leases"]) == (1, 1, 0)
    assert node["consecutive_successes"] == 1
    assert node["median_turnaround_seconds"] == 2 * 3600


def test_completion_without_optional_fields_records_the_copy(api):
    api.add(asset(1))
    api.allocate("node-a")

    done = api.completed("asset-1", "node-a")

    assert (done["copies"], done["conflicting_copies"]) == (1, False)
    [holder] = api.asset("asset-1")["holders"]
    assert (holder["checksum_sha256"], holder["magnet_link"]) == (None, None)
    assert api.asset("asset-1")["checksum_sha256"] is None


def test_second_node_copies_up_to_the_target_then_no_one_gets_it(api):
    api.add(asset(1, priority=9), asset(2, priority=1))
    assert api.allocate("node-a", 0.1) == ["asset-1"]
    api.completed("asset-1", "node-a")

    # One copy of two: asset-1 is still handed out, to a node that does not hold it.
    assert api.allocate("node-b", 0.1) == ["asset-1"]
    done = api.completed("asset-1", "node-b")

    assert done["copies"] == 2
    assert api.allocate("node-c") == ["asset-2"]
    detail = api.asset("asset-1")
    assert detail["copies"] == 2
    assert detail["rank"] is None
    assert sorted(h["node_id"] for h in detail["holders"]) == ["node-a", "node-b"]
    assert api.status()["assets_at_target"] == 1


def test_reported_size_fills_in_an_unknown_size_only(api):
    api.add(asset(1, size_mb=None), asset(2, size_mb=100))
    api.allocate("node-a")

    api.completed("asset-1", "node-a", size_mb=321.5)
    api.completed("asset-2", "node-a", size_mb=999)

    assert api.asset("asset-1")["size_mb"] == 321.5
    assert api.asset("asset-2")["size_mb"] == 100
    # The known size now counts in budgets too (the asset is still in the queue: 1 copy of 2).
    ranking = {row["id"]: row for row in api.client.get("/ranking").json()}
    assert ranking["asset-1"]["budget_mb"] == 321.5
    assert ranking["asset-2"]["budget_mb"] == 100


# --- Checksums ----------------------------------------------------------------------------------


def test_different_checksums_mark_conflicting_copies(api):
    api.add(asset(1))
    api.allocate("node-a")
    api.allocate("node-b")

    first = api.completed("asset-1", "node-a", checksum_sha256=SUM_A)
    second = api.completed("asset-1", "node-b", checksum_sha256=SUM_B)

    assert first["conflicting_copies"] is False
    assert second["conflicting_copies"] is True
    detail = api.asset("asset-1")
    assert detail["conflicting_copies"] is True
    assert detail["checksum_sha256"] == SUM_A  # the first reported is kept
    assert {h["node_id"]: h["checksum_sha256"] for h in detail["holders"]} == {
        "node-a": SUM_A,
        "node-b": SUM_B,
    }
    assert api.status()["assets_with_conflicting_copies"] == 1


def test_same_checksum_in_any_case_is_no_conflict_and_is_stored_lower_case(api):
    api.add(asset(1))
    api.allocate("node-a")
    api.allocate("node-b")
    mixed = "AbCdEf0123456789" * 4

    api.completed("asset-1", "node-a", checksum_sha256=mixed.upper())
    second = api.completed("asset-1", "node-b", checksum_sha256=mixed.lower())

    assert second["conflicting_copies"] is False
    detail = api.asset("asset-1")
    assert detail["conflicting_copies"] is False
    assert detail["checksum_sha256"] == mixed.lower()
    assert [h["checksum_sha256"] for h in detail["holders"]] == [mixed.lower()] * 2
    assert api.status()["assets_with_conflicting_copies"] == 0


@pytest.mark.parametrize(
    "again",
    [
        pytest.param({"checksum_sha256": SUM_A}, id="same-checksum"),
        pytest.param({"checksum_sha256": SUM_A.upper()}, id="same-checksum-upper"),
        pytest.param({}, id="no-checksum"),
        pytest.param({"checksum_sha256": SUM_A, "size_mb": 5}, id="with-size"),
    ],
)
def test_repeated_completion_is_answered_as_recorded_and_changes_nothing(api, again):
    api.add(asset(1, size_mb=None))
    api.allocate("node-a")
    first = api.completed("asset-1", "node-a", checksum_sha256=SUM_A, size_mb=50)
    before = api.snapshot()

    repeated = api.completed("asset-1", "node-a", **again)

    assert repeated["already_recorded"] is True
    assert repeated["late"] is False
    assert (repeated["allocation_id"], repeated["copies"]) == (first["allocation_id"], 1)
    assert api.snapshot() == before
    assert api.node("node-a")["completions"] == 1
    assert api.asset("asset-1")["size_mb"] == 50


def test_repeated_completion_with_another_checksum_is_409_and_changes_nothing(api, clock):
    api.add(asset(1))
    api.allocate("node-a")
    api.completed("asset-1", "node-a", checksum_sha256=SUM_A)
    before = api.snapshot()
    clock.advance(minutes=5)

    response = api.complete("asset-1", "node-a", checksum_sha256=SUM_B)

    assert response.status_code == 409
    assert SUM_A in response.json()["detail"]
    assert api.snapshot() == before  # not even the node's last_seen_at
    assert api.asset("asset-1")["conflicting_copies"] is False


# --- Late completion ----------------------------------------------------------------------------


def test_completion_after_the_lease_expired_still_records_the_copy(api, clock):
    api.add(asset(1))
    [lease] = api.client.post("/allocate", json={"node_id": "node-a", "free_space_gb": 10}).json()
    clock.advance(hours=25)
    assert api.allocate("node-b") == ["asset-1"]  # its request closed node-a's due lease
    assert api.lease("asset-1", "node-a")["status"] == "expired"

    done = api.completed("asset-1", "node-a", checksum_sha256=SUM_A)

    assert done["late"] is True
    assert done["already_recorded"] is False
    assert (done["allocation_id"], done["copies"]) == (lease["allocation_id"], 1)
    row = api.lease("asset-1", "node-a")
    assert (row["status"], row["checksum_sha256"]) == ("completed", SUM_A)
    detail = api.asset("asset-1")
    # node-b's open lease still counts once; the expiry did not leave a lease counted twice.
    assert (detail["copies"], detail["leases"]) == (1, 1)
    assert [h["node_id"] for h in detail["holders"]] == ["node-a"]
    assert [h["node_id"] for h in detail["open_leases"]] == ["node-b"]
    assert api.node("node-a")["completions"] == 1


# --- No lease, unknown node ---------------------------------------------------------------------


@pytest.fixture
def node_a_holds_asset_1(api) -> Api:
    """node-a holds an open lease on asset-1 only; asset-2 (too big for it) is unleased."""
    api.add(asset(1, size_mb=100), asset(2, size_mb=5000))
    assert api.allocate("node-a", 1) == ["asset-1"]
    return api


@pytest.mark.parametrize("route", ["/complete", "/fail"])
def test_report_on_an_asset_the_node_holds_no_lease_on_is_404(node_a_holds_asset_1, route):
    api = node_a_holds_asset_1
    before = api.snapshot()

    body = {"asset_id": "asset-2", "node_id": "node-a"}
    if route == "/fail":
        body["reason"] = "HTTP 404"
    response = api.client.post(route, json=body)

    assert response.status_code == 404
    assert "node-a" in response.json()["detail"]
    assert api.snapshot() == before


@pytest.mark.parametrize("route", ["/complete", "/fail"])
@pytest.mark.parametrize(
    ("asset_id", "node_id"),
    [("asset-1", "node-zz"), ("asset-404", "node-a"), ("asset-404", "node-zz")],
)
def test_report_by_unknown_node_or_on_unknown_asset_is_404(
    node_a_holds_asset_1, route, asset_id, node_id
):
    api = node_a_holds_asset_1
    before = api.snapshot()

    body = {"asset_id": asset_id, "node_id": node_id, "reason": "disk full"}
    if route == "/complete":
        del body["reason"]
    response = api.client.post(route, json=body)

    assert response.status_code == 404
    assert api.snapshot() == before
    assert api.client.get("/nodes/node-zz").status_code == 404


def test_released_lease_can_be_neither_completed_nor_failed(node_a_holds_asset_1):
    api = node_a_holds_asset_1
    assert api.client.post("/release", json={"asset_id": "asset-1", "node_id": "node-a"}).is_success
    before = api.snapshot()

    assert api.complete("asset-1", "node-a").status_code == 404
    assert api.fail("asset-1", "node-a").status_code == 404
    assert api.snapshot() == before


def test_completed_copy_cannot_be_failed_afterwards(node_a_holds_asset_1):
    api = node_a_holds_asset_1
    api.completed("asset-1", "node-a")
    before = api.snapshot()

    assert api.fail("asset-1", "node-a").status_code == 404
    assert api.snapshot() == before
    assert api.asset("asset-1")["copies"] == 1


# --- Failures -----------------------------------------------------------------------------------


def test_failure_closes_the_lease_with_its_reason_and_requeues_the_asset(service, clock):
    api = service(replication_target=1)
    api.add(asset(1))
    api.allocate("node-a")
    assert api.allocate("node-b") == []  # target 1: node-a's lease holds it
    clock.advance(minutes=3)

    failure = api.failed("asset-1", "node-a", reason="HTTP 404 from data.example.org")

    assert failure["failed_nodes"] == 1
    assert failure["unreachable"] is False
    row = api.lease("asset-1", "node-a")
    assert (row["status"], row["note"]) == ("failed", "HTTP 404 from data.example.org")
    assert at(row["closed_at"]) == clock()
    detail = api.asset("asset-1")
    assert (detail["state"], detail["failed_nodes"], detail["leases"]) == ("active", 1, 0)
    assert detail["history"][0]["note"] == "HTTP 404 from data.example.org"
    assert api.allocate("node-b") == ["asset-1"]
    assert api.node("node-a")["failures"] == 1


def prove(api: Api, *node_ids: str) -> None:
    """Each node completes a copy of a file of its own (REPLICATION_TARGET 1): a node with a
    record, whose failures weigh in full (a node without one weighs a third)."""
    for node_id in node_ids:
        api.add(asset(f"proof-{node_id}", size_mb=1))
        assert api.allocate(node_id) == [f"asset-proof-{node_id}"]
        api.completed(f"asset-proof-{node_id}", node_id)


def make_unreachable(api: Api, asset_id: str, nodes: list[str]) -> list[dict[str, Any]]:
    results = []
    for node_id in nodes:
        assert asset_id in api.allocate(node_id)
        results.append(api.failed(asset_id, node_id))
    return results


def test_three_distinct_failing_nodes_make_the_asset_unreachable(service):
    api = service(replication_target=1)
    prove(api, "node-a", "node-b", "node-c")
    api.add(asset(1))

    results = make_unreachable(api, "asset-1", ["node-a", "node-b", "node-c"])

    assert [(r["failed_nodes"], r["unreachable"]) for r in results] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    detail = api.asset("asset-1")
    assert (detail["state"], detail["failed_nodes"], detail["rank"]) == ("unreachable", 3, None)
    assert api.allocate("node-d") == []
    api.add(asset(2, priority=1))
    assert api.allocate("node-d") == ["asset-2"]
    assert api.status()["unreachable_assets"] == 1


def test_failures_from_the_same_node_count_once(service, clock):
    api = service(replication_target=1)
    api.add(asset(1))

    results = []
    for node_id in ["node-a", "node-a", "node-a", "node-b"]:
        results += make_unreachable(api, "asset-1", [node_id])
        clock.advance(hours=api.settings.failed_retry_hours + 1)  # node-a may have it again

    assert [r["failed_nodes"] for r in results] == [1, 1, 1, 2]
    assert not any(r["unreachable"] for r in results)
    assert api.asset("asset-1")["state"] == "active"
    assert api.allocate("node-c") == ["asset-1"]
    assert api.status()["unreachable_assets"] == 0
    assert api.node("node-a")["failures"] == 3


def test_reinstate_hands_an_unreachable_asset_out_again(service, clock):
    api = service(replication_target=1)
    prove(api, "node-a", "node-b", "node-c")
    api.add(asset(1))
    make_unreachable(api, "asset-1", ["node-a", "node-b", "node-c"])
    clock.advance(minutes=10)

    response = api.client.post("/assets/reinstate", json={"asset_ids": ["asset-1", "asset-nope"]})

    assert response.status_code == 200
    assert response.json() == {"status": "success", "changed": 1, "unknown_ids": ["asset-nope"]}
    detail = api.asset("asset-1")
    assert (detail["state"], detail["failed_nodes"]) == ("active", 0)
    assert detail["rank"] is not None
    assert api.status()["unreachable_assets"] == 0
    assert api.allocate("node-d") == ["asset-1"]
    # Earlier failures are forgotten: one more counts as the first.
    clock.advance(minutes=1)
    assert api.failed("asset-1", "node-d") == {
        "status": "success",
        "message": "Failure recorded",
        "allocation_id": api.lease("asset-1", "node-d")["id"],
        "failed_nodes": 1,
        "unreachable": False,
        "reason_code": "unspecified",
        "counts_against_asset": True,
        "failure_weight": 0.33,  # node-d has no completed copy
    }


def test_reinstate_only_unknown_ids_changes_nothing(api):
    api.add(asset(1))
    before = api.snapshot()

    response = api.client.post("/assets/reinstate", json={"asset_ids": ["x", "y"]})

    assert response.json() == {"status": "success", "changed": 0, "unknown_ids": ["x", "y"]}
    assert api.snapshot() == before


# --- Renewal ------------------------------------------------------------------------------------


def test_renewed_lease_outlives_an_unrenewed_one(service, clock):
    api = service(replication_target=1)
    api.add(asset(1, size_mb=1000), asset(2, size_mb=1000))
    assert api.allocate("node-a", 1) == ["asset-1"]
    assert api.allocate("node-b", 1) == ["asset-2"]
    clock.advance(hours=23)

    response = api.renew("node-a")
    clock.advance(hours=2)

    assert response.status_code == 200, response.text
    assert response.json()["renewed"] == 1
    assert response.json()["not_renewed"] == []
    assert at(response.json()["expires_at"]) == clock() - timedelta(hours=2) + timedelta(hours=24)
    # 25 h after allocation: node-b's lease expired and asset-2 moves on; node-a's does not.
    assert api.allocate("node-c", 10) == ["asset-2"]
    assert api.lease("asset-1", "node-a")["status"] == "allocated"
    assert api.lease("asset-2", "node-b")["status"] == "expired"
    assert api.asset("asset-1")["leases"] == 1


def test_renew_names_the_listed_assets_it_did_not_renew(api, clock):
    api.add(asset(1, priority=9), asset(2, priority=8), asset(3, priority=7))
    assert api.allocate("node-a", 0.2) == ["asset-1", "asset-2"]
    assert api.allocate("node-b", 0.1) == ["asset-3"]
    first_expiry = at(api.lease("asset-2", "node-a")["expires_at"])
    clock.advance(hours=1)

    response = api.renew("node-a", ["asset-1", "asset-3", "asset-404"])

    body = response.json()
    assert response.status_code == 200
    assert body["renewed"] == 1
    assert body["not_renewed"] == ["asset-3", "asset-404"]
    renewed = api.lease("asset-1", "node-a")
    assert at(renewed["expires_at"]) == clock() + timedelta(hours=24)
    assert at(renewed["renewed_at"]) == clock()
    assert at(api.lease("asset-2", "node-a")["expires_at"]) == first_expiry
    # node-b's lease on asset-3 was not touched by node-a's request.
    assert at(api.lease("asset-3", "node-b")["expires_at"]) == first_expiry


def test_lease_already_past_its_expiry_is_not_renewed(service, clock):
    api = service(replication_target=1)
    api.add(asset(1))
    api.allocate("node-a")
    clock.advance(hours=24, seconds=1)  # due, though no request has closed it yet

    all_leases = api.renew("node-a").json()
    listed = api.renew("node-a", ["asset-1"]).json()

    assert all_leases["renewed"] == 0
    assert (listed["renewed"], listed["not_renewed"]) == (0, ["asset-1"])
    assert api.allocate("node-b") == ["asset-1"]
    assert api.lease("asset-1", "node-a")["status"] == "expired"


def test_renew_for_an_unknown_node_is_404(api):
    api.add(asset(1))
    api.allocate("node-a")
    before = api.snapshot()

    response = api.renew("node-zz", ["asset-1"])

    assert response.status_code == 404
    assert "node-zz" in response.json()["detail"]
    assert api.snapshot() == before


# --- Expiry without maintenance -----------------------------------------------------------------


def test_expired_lease_never_blocks_allocation_without_maintenance(service, clock):
    api = service(replication_target=1)
    api.add(asset(1))
    api.allocate("node-a")
    clock.advance(hours=23, minutes=59)
    assert api.allocate("node-b") == []

    clock.advance(hours=1)

    assert api.allocate("node-b") == ["asset-1"]
    assert api.status()["last_maintenance"] is None
    assert api.lease("asset-1", "node-a")["status"] == "expired"
    assert api.asset("asset-1")["leases"] == 1


# --- Lease cap (node/standing.py) ---------------------------------------------------------------


@pytest.fixture
def capped(service) -> Api:
    """Caps 2 <= 4 <= 16; many small assets, so only the cap limits a node. (All the test's
    nodes ask from one address: no per-address cap for new nodes here.)"""
    api = service(
        lease_cap_initial=4,
        lease_cap_min=2,
        lease_cap_max=16,
        max_assets_per_allocation=50,
        unproven_leases_per_address=0,
    )
    api.add(*(asset(f"{n:02}", size_mb=1) for n in range(40)))
    return api


def standing(api: Api, node_id: str) -> tuple[int, int, int]:
    node = api.node(node_id)
    return node["lease_cap"], node["consecutive_successes"], node["open_leases"]


def test_a_new_node_holds_no_more_than_the_initial_cap(capped):
    first = capped.allocate("node-a")
    more = [capped.allocate("node-a") for _ in range(3)]

    assert len(first) == 4
    assert more == [[], [], []]
    assert standing(capped, "node-a") == (4, 0, 4)
    # Another node has a cap of its own.
    assert len(capped.allocate("node-b")) == 4


def test_completions_double_the_cap_at_half_of_it_up_to_the_maximum(capped):
    held = capped.allocate("node-a")
    capped.completed(held[0], "node-a")
    assert standing(capped, "node-a") == (4, 1, 3)

    capped.completed(held[1], "node-a")  # a run of 2 = half of 4

    assert standing(capped, "node-a") == (8, 2, 2)
    held = held[2:] + capped.allocate("node-a")
    assert len(held) == 8
    assert capped.allocate("node-a") == []
    for asset_id in held[:2]:
        capped.completed(asset_id, "node-a")
    assert standing(capped, "node-a")[:2] == (16, 4)  # a run of 4 = half of 8
    for asset_id in held[2:]:
        capped.completed(asset_id, "node-a")
    node = capped.node("node-a")
    assert (node["lease_cap"], node["consecutive_successes"]) == (16, 10)  # the maximum
    assert node["completions"] == 10
    assert len(capped.allocate("node-a")) == 16


def test_expirations_halve_the_cap_once_at_the_next_maintenance_cycle(capped, clock):
    held = capped.allocate("node-a")
    for asset_id in held[:2]:
        capped.completed(asset_id, "node-a")
    held = held[2:] + capped.allocate("node-a")
    assert standing(capped, "node-a") == (8, 2, 8)
    clock.advance(hours=25)
    capped.allocate("node-b")  # closes node-a's due leases; its standing waits for maintenance
    node = capped.node("node-a")
    assert (node["lease_cap"], node["expirations"], node["open_leases"]) == (8, 0, 0)

    capped.maintenance()

    node = capped.node("node-a")
    assert (node["lease_cap"], node["consecutive_successes"]) == (4, 0)  # halved once, not 8x
    assert node["expirations"] == 8
    # A second cycle charges nothing more.
    clock.advance(minutes=5)
    capped.maintenance()
    assert (capped.node("node-a")["lease_cap"], capped.node("node-a")["expirations"]) == (4, 8)
    assert len(capped.allocate("node-a")) == 4


def test_expirations_halve_the_cap_down_to_the_minimum(capped, clock):
    capped.allocate("node-a")
    clock.advance(hours=25)
    capped.maintenance()  # the cycle itself closes the due leases and charges them
    assert standing(capped, "node-a") == (2, 0, 0)

    capped.allocate("node-a")
    clock.advance(hours=25)
    capped.maintenance()

    node = capped.node("node-a")
    assert (node["lease_cap"], node["expirations"]) == (2, 6)


def test_each_new_expiration_is_charged_even_after_a_late_completion(capped, clock):
    """A late completion turns an expired lease into a copy; expirations that come after it
    must still be charged at the next cycle."""
    first = capped.allocate("node-a")
    clock.advance(hours=25)
    capped.maintenance()
    assert (capped.node("node-a")["lease_cap"], capped.node("node-a")["expirations"]) == (2, 4)
    assert capped.completed(first[0], "node-a")["late"] is True
    assert standing(capped, "node-a") == (4, 1, 0)  # a run of 1 = half the cap of 2: doubled

    assert len(capped.allocate("node-a", 0.001)) == 1  # room for one 1 MiB file
    clock.advance(hours=25)
    record = capped.maintenance()

    assert record["steps"]["expired_leases"] == 1
    node = capped.node("node-a")
    # A new lease expired and this cycle found it: the cap is halved and the run ended.
    assert (node["lease_cap"], node["consecutive_successes"]) == (2, 0)


def test_a_node_error_takes_a_tenth_off_the_cap_and_ends_the_run(service):
    api = service(lease_cap_initial=50, lease_cap_min=10, lease_cap_max=100)
    api.add(*(asset(f"{n:02}", size_mb=1) for n in range(60)))
    held = api.allocate("node-a")
    assert len(held) == 50
    api.completed(held[0], "node-a")
    assert standing(api, "node-a")[:2] == (50, 1)

    api.failed(held[1], "node-a", code="node_error")
    assert standing(api, "node-a")[:2] == (45, 0)
    api.failed(held[2], "node-a", code="node_error")

    assert standing(api, "node-a") == (41, 0, 47)  # 45 - 45 // 10
    assert api.allocate("node-a") == []  # 47 open leases, more than the cap now


def test_a_node_error_takes_at_least_one_off_a_small_cap(capped):
    held = capped.allocate("node-a")
    capped.completed(held[0], "node-a")

    capped.failed(held[1], "node-a", code="node_error")

    assert standing(capped, "node-a") == (3, 0, 2)
    assert len(capped.allocate("node-a")) == 1
    capped.failed(held[2], "node-a", code="node_error")
    capped.failed(held[3], "node-a", code="node_error")
    assert standing(capped, "node-a")[0] == 2  # never below the minimum


# --- Validation ---------------------------------------------------------------------------------


def error_fields(response: httpx.Response) -> list[str]:
    fields = []
    for problem in response.json()["detail"]:
        names = [part for part in problem["loc"] if isinstance(part, str) and part != "body"]
        fields.extend(names[-1:])
    return fields


OK_COMPLETE = {"asset_id": "asset-1", "node_id": "node-a"}
OK_FAIL = {"asset_id": "asset-1", "node_id": "node-a", "reason": "HTTP 404"}

BAD_BODIES = [
    # /complete
    pytest.param("/complete", {"checksum_sha256": "a" * 63}, "checksum_sha256", id="sum-63"),
    pytest.param("/complete", {"checksum_sha256": "a" * 65}, "checksum_sha256", id="sum-65"),
    pytest.param("/complete", {"checksum_sha256": "g" * 64}, "checksum_sha256", id="sum-not-hex"),
    pytest.param(
        "/complete", {"checksum_sha256": " " + "a" * 63}, "checksum_sha256", id="sum-space"
    ),
    pytest.param("/complete", {"checksum_sha256": ""}, "checksum_sha256", id="sum-empty"),
    pytest.param("/complete", {"checksum_sha256": 5}, "checksum_sha256", id="sum-int"),
    pytest.param(
        "/complete", {"magnet_link": "http://example.org/x"}, "magnet_link", id="magnet-http"
    ),
    pytest.param("/complete", {"magnet_link": "magnet:xt=1"}, "magnet_link", id="magnet-no-?"),
    pytest.param("/complete", {"magnet_link": MAGNET + "\n"}, "magnet_link", id="magnet-newline"),
    pytest.param(
        "/complete", {"magnet_link": "magnet:?" + "x" * 5000}, "magnet_link", id="magnet-long"
    ),
    pytest.param("/complete", {"size_mb": -1}, "size_mb", id="size-negative"),
    # An empty download is a failure to report, not a size: 0 would make leases free.
    pytest.param("/complete", {"size_mb": 0}, "size_mb", id="size-zero"),
    pytest.param("/complete", {"size_mb": "12"}, "size_mb", id="size-string"),
    pytest.param("/complete", {"size_mb": 1e308}, "size_mb", id="size-huge"),
    pytest.param("/complete", {"checksum": SUM_A}, "checksum", id="extra-field"),
    pytest.param("/complete", {"node_id": "node a"}, "node_id", id="node-space"),
    pytest.param("/complete", {"node_id": ""}, "node_id", id="node-empty"),
    pytest.param("/complete", {"node_id": "n" * 129}, "node_id", id="node-129"),
    pytest.param("/complete", {"node_id": None}, "node_id", id="node-null"),
    pytest.param("/complete", {"asset_id": ""}, "asset_id", id="asset-empty"),
    pytest.param("/complete", {"asset_id": "asset\x00-1"}, "asset_id", id="asset-nul"),
    # /fail
    pytest.param("/fail", {"reason": ""}, "reason", id="reason-empty"),
    pytest.param("/fail", {"reason": None}, "reason", id="reason-null"),
    pytest.param("/fail", {"reason": "disk\x00full"}, "reason", id="reason-nul"),
    pytest.param("/fail", {"reason": "x" * 2001}, "reason", id="reason-2001"),
    pytest.param("/fail", {"reason": 404}, "reason", id="reason-int"),
    pytest.param("/fail", {"note": "x"}, "note", id="extra-field"),
    pytest.param("/fail", {"node_id": "node/a"}, "node_id", id="node-slash"),
    # /renew
    pytest.param("/renew", {"asset_ids": "asset-1"}, "asset_ids", id="renew-ids-string"),
    pytest.param("/renew", {"asset_ids": [""]}, "asset_ids", id="renew-empty-id"),
    pytest.param("/renew", {"node_id": "node a"}, "node_id", id="renew-bad-node"),
    pytest.param("/renew", {"all": True}, "all", id="renew-extra-field"),
]


@pytest.mark.parametrize(("route", "change", "field"), BAD_BODIES)
def test_bad_report_names_the_field_and_changes_nothing(node_a_holds_asset_1, route, change, field):
    api = node_a_holds_asset_1
    base = {"/complete": OK_COMPLETE, "/fail": OK_FAIL, "/renew": {"node_id": "node-a"}}[route]
    before = api.snapshot()

    response = api.client.post(route, json={**base, **change})

    assert response.status_code == 422, response.text
    assert field in error_fields(response)
    assert api.snapshot() == before


@pytest.mark.parametrize(
    ("route", "missing"),
    [
        ("/complete", "asset_id"),
        ("/complete", "node_id"),
        ("/fail", "asset_id"),
        ("/fail", "node_id"),
        ("/fail", "reason"),
        ("/renew", "node_id"),
    ],
)
def test_missing_field_is_named(node_a_holds_asset_1, route, missing):
    api = node_a_holds_asset_1
    base = {"/complete": OK_COMPLETE, "/fail": OK_FAIL, "/renew": {"node_id": "node-a"}}[route]
    before = api.snapshot()

    response = api.client.post(route, json={k: v for k, v in base.items() if k != missing})

    assert response.status_code == 422
    assert missing in error_fields(response)
    assert api.snapshot() == before


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "-0.5"])
def test_non_finite_or_negative_size_is_refused(node_a_holds_asset_1, number):
    api = node_a_holds_asset_1
    before = api.snapshot()
    body = '{"asset_id": "asset-1", "node_id": "node-a", "size_mb": ' + number + "}"

    response = api.client.post("/complete", content=body, headers=JSON_HEADERS)

    assert response.status_code == 422
    assert error_fields(response) == ["size_mb"]
    json.dumps(response.json())  # the error itself is valid JSON
    assert api.snapshot() == before


def test_valid_edge_values_are_accepted(node_a_holds_asset_1):
    api = node_a_holds_asset_1

    response = api.complete(
        "asset-1", "node-a", checksum_sha256="F" * 64, magnet_link="magnet:?", size_mb=0.001
    )

    assert response.status_code == 200, response.text
    [holder] = api.asset("asset-1")["holders"]
    assert (holder["checksum_sha256"], holder["magnet_link"]) == ("f" * 64, "magnet:?")


# --- Withdrawal ---------------------------------------------------------------------------------


def test_withdrawn_asset_is_never_handed_out_and_its_leases_close_at_maintenance(api, clock):
    api.add(asset(1, priority=9), asset(2, priority=1))
    assert api.allocate("node-a", 0.1) == ["asset-1"]
    api.completed("asset-1", "node-a")
    assert api.allocate("node-b", 0.1) == ["asset-1"]  # an open lease on the copied asset

    response = api.client.post("/assets/withdraw", json={"asset_ids": ["asset-1", "nope"]})

    assert response.json() == {"status": "success", "changed": 1, "unknown_ids": ["nope"]}
    detail = api.asset("asset-1")
    assert (detail["state"], detail["rank"]) == ("withdrawn", None)
    assert api.allocate("node-c") == ["asset-2"]
    assert api.status()["withdrawn_assets"] == 1
    # The lease stays open until the next maintenance cycle closes it.
    assert api.lease("asset-1", "node-b")["status"] == "allocated"

    clock.advance(minutes=1)
    record = api.maintenance()

    assert record["steps"]["orphaned_leases_closed"] == 1
    row = api.lease("asset-1", "node-b")
    assert row["status"] == "released"
    assert "withdrawn" in row["note"]
    assert at(row["closed_at"]) == clock()
    detail = api.asset("asset-1")
    assert (detail["copies"], detail["leases"], detail["state"]) == (1, 0, "withdrawn")
    assert [h["node_id"] for h in detail["holders"]] == ["node-a"]
    assert api.lease("asset-2", "node-c")["status"] == "allocated"  # other leases untouched
    assert api.allocate("node-d") == ["asset-2"]
    # Reinstated, it is handed out again.
    api.client.post("/assets/reinstate", json={"asset_ids": ["asset-1"]})
    assert api.allocate("node-e") == ["asset-1"]


# --- Found in review ----------------------------------------------------------------------------


def test_a_node_whose_leases_all_expired_gets_work_again_without_maintenance(service):
    """Its own due leases never count against its budget or cap, however many other due
    leases wait to be swept (a request sweeps only a few of those)."""
    api = service(
        lease_cap_initial=4,
        lease_cap_min=2,
        lease_cap_max=16,
        replication_target=1,
        unproven_leases_per_address=0,  # 61 new nodes from the test's one address
    )
    api.add(*(asset(n, size_mb=1.0) for n in range(400)))
    for n in range(60):  # 60 nodes x 4 leases: more due leases than one request sweeps
        assert len(api.allocate(f"other-{n}")) == 4
    held = api.allocate("h")
    assert len(held) == 4
    assert api.allocate("h") == []  # at its cap

    api.clock.advance(hours=25)
    again = api.allocate("h")

    assert len(again) == 4
    assert api.node("h")["open_leases"] == 4
    assert {a["status"] for a in api.allocations(node_id="h") if a["asset_id"] in held} == {
        "expired"
    }


def test_a_copy_finished_after_its_asset_was_withdrawn_is_recorded(api):
    api.add(asset(1, priority=9))
    assert api.allocate("node-a") == ["asset-1"]
    assert api.client.post("/assets/withdraw", json={"asset_ids": ["asset-1"]}).status_code == 200
    assert api.maintenance()["steps"]["orphaned_leases_closed"] == 1
    assert api.lease("asset-1", "node-a")["status"] == "released"

    done = api.completed("asset-1", "node-a")

    assert (done["late"], done["copies"]) == (True, 1)
    assert api.lease("asset-1", "node-a")["status"] == "completed"
    assert api.asset("asset-1")["state"] == "withdrawn"
    assert api.node("node-a")["expirations"] == 0


def test_a_node_released_lease_cannot_be_completed(api):
    api.add(asset(1))
    api.allocate("node-a")
    assert api.client.post("/release", json={"asset_id": "asset-1", "node_id": "node-a"}).is_success
    before = api.snapshot()

    assert api.complete("asset-1", "node-a").status_code == 404
    assert api.snapshot() == before


def test_renew_takes_at_most_ten_thousand_ids(api):
    api.add(asset(1))
    api.allocate("node-a")
    before = api.snapshot()

    response = api.renew("node-a", [f"asset-{n}" for n in range(10_001)])

    assert response.status_code == 422
    assert api.snapshot() == before
    assert api.renew("node-a", [f"asset-{n}" for n in range(10_000)]).json()["renewed"] == 1
