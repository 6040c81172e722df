"""A lease's life after /allocate (allocation/lifecycle.py), through HTTP: completed into a
copy, checksums compared, completed late, and reports on leases a node does not hold."""

from __future__ import annotations

import pytest

from tests.support.factories import asset
from tests.support.lifecycle import MAGNET, SUM_A, SUM_B, at

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


def test_a_node_released_lease_cannot_be_completed(api):
    api.add(asset(1))
    api.allocate("node-a")
    assert api.client.post("/release", json={"asset_id": "asset-1", "node_id": "node-a"}).is_success
    before = api.snapshot()

    assert api.complete("asset-1", "node-a").status_code == 404
    assert api.snapshot() == before
