"""A lease's life after /allocate (allocation/lifecycle.py), through HTTP: failed, the asset
made unreachable by distinct failing nodes, and reinstated."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api
from tests.support.factories import asset
from tests.support.lifecycle import at

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
