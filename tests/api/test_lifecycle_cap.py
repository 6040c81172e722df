"""A node's lease cap (node/standing.py), through HTTP: raised by completions, lowered by
expirations and node errors."""

from __future__ import annotations

import pytest

from tests.support.api import Api
from tests.support.factories import asset

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
