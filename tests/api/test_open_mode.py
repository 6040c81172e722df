"""Open mode (NODE_AUTH off, the seed's default): anyone may name any node. What a client
that makes up node ids can do is bounded (README, Security)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from priorizer.allocation import service as allocation_service
from priorizer.maintenance.service import cap_limits
from priorizer.queue.policy import queue_policy
from tests.support.factories import asset
from tests.support.node_api import NodeApi


@pytest.fixture
def service(start_service, clock) -> Callable[..., NodeApi]:
    return lambda **overrides: NodeApi(*start_service(**overrides), clock)


@pytest.fixture
def api(service) -> NodeApi:
    return service()


# --- (a) Made-up node ids failing the top asset -------------------------------------------------


def fail_top(api: NodeApi, node_ids: list[str]) -> list[dict]:
    results = []
    for node_id in node_ids:
        assert "asset-top" in api.allocate(node_id, 0.1)
        results.append(api.failed("asset-top", node_id, reason_code="http_404"))
    return results


def test_three_made_up_nodes_no_longer_make_the_top_asset_unreachable(api):
    api.add(asset("top", priority=10), asset("next", priority=4))

    results = fail_top(api, ["ghost-1", "ghost-2", "ghost-3"])  # six anonymous requests

    assert [(r["failed_nodes"], r["unreachable"]) for r in results] == [
        (1, False),
        (2, False),
        (3, False),
    ]
    assert [r["failure_weight"] for r in results] == [0.33, 0.67, 1.0]
    assert api.asset("asset-top")["state"] == "active"
    assert api.allocate("honest", 0.1) == ["asset-top"]


def test_failures_from_nodes_without_a_record_still_add_up(api):
    api.add(asset("top", priority=10))

    results = fail_top(api, [f"ghost-{n}" for n in range(9)])

    assert [r["unreachable"] for r in results] == [False] * 8 + [True]
    assert "9 nodes" in api.asset("asset-top")["state_reason"]


def test_failures_from_nodes_with_a_record_weigh_in_full(api):
    api.prove("node-a", "node-b", "node-c")
    api.add(asset("top", priority=10))

    results = fail_top(api, ["node-a", "node-b", "node-c"])

    assert [r["failure_weight"] for r in results] == [1.0, 2.0, 3.0]
    assert results[-1]["unreachable"] is True


# --- (b) New nodes from one address share one lease cap; a plausible free space ----------------


def client_from(api: NodeApi, address: str) -> TestClient:
    """Another client of the same running service, calling from `address`."""
    return TestClient(api.client.app, client=(address, 40_000))


def leases_of(client: TestClient, node_id: str, free_space_gb: float = 999_999) -> list[str]:
    response = client.post("/allocate", json={"node_id": node_id, "free_space_gb": free_space_gb})
    assert response.status_code == 200, response.text
    return [lease["id"] for lease in response.json()]


@pytest.fixture
def small_catalog(service) -> NodeApi:
    """20 small assets, one copy each; a node may hold 10 open leases at first."""
    api = service(replication_target=1, lease_cap_initial=10, lease_cap_min=2)
    api.add(*(asset(n, size_mb=1) for n in range(20)))
    return api


def test_ghost_nodes_from_one_address_cannot_lock_the_catalog(small_catalog):
    ghosts = client_from(small_catalog, "203.0.113.7")
    honest = client_from(small_catalog, "198.51.100.20")

    first = leases_of(ghosts, "ghost-1")
    second = leases_of(ghosts, "ghost-2")

    assert (len(first), second) == (10, [])  # one cap for both: LEASE_CAP_INITIAL
    assert len(leases_of(honest, "volunteer")) == 10
    assert small_catalog.node("ghost-2")["open_leases"] == 0


def test_a_node_with_a_copy_is_capped_on_its_own(small_catalog):
    ghosts = client_from(small_catalog, "203.0.113.7")
    held = leases_of(ghosts, "node-a", 0.002)  # room for 2 of the 1 MiB files
    small_catalog.completed(held[0], "node-a")

    # node-a has a record now: its new leases are its own; its old one still counts.
    assert len(leases_of(ghosts, "node-a")) == 9  # its own cap of 10, one lease still open
    assert len(leases_of(ghosts, "new-node")) == 9  # 10 for the address, minus node-a's first


def test_with_node_auth_each_node_has_its_own_cap(service):
    api = service(replication_target=1, lease_cap_initial=10, lease_cap_min=2, node_auth=True)
    api.add(*(asset(n, size_mb=1) for n in range(20)))
    shared = client_from(api, "203.0.113.7")
    for node_id in ("node-a", "node-b"):
        token = api.client.post("/nodes/enroll", json={"node_id": node_id}).json()["token"]
        response = shared.post(
            "/allocate",
            json={"node_id": node_id, "free_space_gb": 10},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert len(response.json()) == 10, response.text


def test_the_cap_of_new_nodes_per_address_is_a_setting(service):
    api = service(replication_target=1, unproven_leases_per_address=3)
    api.add(*(asset(n, size_mb=1) for n in range(20)))
    ghosts = client_from(api, "203.0.113.7")

    assert [len(leases_of(ghosts, f"ghost-{n}")) for n in range(3)] == [3, 0, 0]


def test_concurrent_new_nodes_from_one_address_never_pass_the_cap(small_catalog):
    """One request holds its transaction open: another from the same address waits for it
    (a lock per address on PostgreSQL, one writer at a time on SQLite), then finds the cap
    reached. Without the wait, each would count the other's leases as none."""
    api = small_catalog
    settings, database = api.settings, api.database
    later: list[int] = []

    def second_request() -> None:
        with database.write() as session:
            later.append(len(allocate_in(session, settings, api.clock(), "ghost-2")))

    with database.write() as session:
        assert len(allocate_in(session, settings, api.clock(), "ghost-1")) == 10
        other = threading.Thread(target=second_request)
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive()  # waiting for this transaction
    other.join(timeout=30)

    assert later == [0]
    assert api.status()["active_allocations"] == 10


def allocate_in(session, settings, now, node_id: str) -> list:
    return allocation_service.allocate(
        session,
        node_id=node_id,
        free_space_gb=10,
        queue=queue_policy(settings),
        max_assets=settings.max_assets_per_allocation,
        limits=cap_limits(settings),
        lease_seconds=settings.allocation_expiry_seconds,
        failed_retry_seconds=settings.failed_retry_seconds,
        now=now,
        client_address="203.0.113.7",
        unproven_address_cap=settings.unproven_address_cap,
    )


@pytest.mark.parametrize(
    ("overrides", "free_space_gb"),
    [({}, 10_000_000), ({}, 1_000_000.5), ({"max_free_space_gb": 500}, 501)],
)
def test_a_free_space_no_node_has_is_refused_and_changes_nothing(service, overrides, free_space_gb):
    api = service(**overrides)
    api.add(asset(1))
    before = api.snapshot()

    response = api.client.post(
        "/allocate", json={"node_id": "ghost", "free_space_gb": free_space_gb}
    )

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "free_space_gb"]
    assert "MAX_FREE_SPACE_GB" in problem["msg"]
    assert api.snapshot() == before


def test_the_largest_plausible_free_space_is_accepted(api):
    api.add(asset(1))

    assert api.allocate("big-node", 1_000_000) == ["asset-1"]


# --- (c) Rate limits: the address first, then the node as seen from that address ---------------


def renew_as(client: TestClient, node_id: str, **headers: str) -> int:
    return client.post("/renew", json={"node_id": node_id}, headers=headers).status_code


def test_calls_naming_a_node_from_elsewhere_do_not_get_it_limited(service):
    api = service(rate_limit_per_node="5/minute")
    api.add(asset(1))
    node = client_from(api, "198.51.100.20")
    attacker = client_from(api, "203.0.113.7")
    assert leases_of(node, "volunteer", 10) == ["asset-1"]

    flood = [renew_as(attacker, "volunteer") for _ in range(7)]

    assert flood == [200] * 5 + [429] * 2
    assert [renew_as(node, "volunteer") for _ in range(4)] == [200] * 4  # its own allowance


def test_the_address_limit_comes_first_and_a_call_it_refuses_costs_the_node_nothing(service):
    api = service(rate_limit_per_address="4/minute", rate_limit_per_node="6/minute", node_auth=True)
    token = api.client.post("/nodes/enroll", json={"node_id": "node-a"}).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    busy, other = client_from(api, "203.0.113.7"), client_from(api, "198.51.100.20")

    from_busy = [renew_as(busy, "node-a", **auth) for _ in range(6)]
    from_other = [renew_as(other, "node-a", **auth) for _ in range(3)]

    assert from_busy == [200] * 4 + [429] * 2  # the address's limit
    # Had the two refused calls counted against node-a, it would have none left.
    assert from_other == [200, 200, 429]  # node-a's 6


def test_with_node_auth_the_limit_is_the_authenticated_nodes_wherever_it_calls(service):
    api = service(rate_limit_per_node="4/minute", node_auth=True)
    token = api.client.post("/nodes/enroll", json={"node_id": "node-a"}).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    api.add(asset(1))
    home, away = client_from(api, "198.51.100.20"), client_from(api, "192.0.2.44")
    home.post("/allocate", json={"node_id": "node-a", "free_space_gb": 10}, headers=auth)

    statuses = [renew_as(home if n % 2 else away, "node-a", **auth) for n in range(5)]

    assert statuses == [200] * 3 + [429] * 2  # 4 in all, the allocation included
