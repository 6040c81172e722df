"""The allocation rules (allocation/policy.py), seen through the HTTP API: the budget, unknown
sizes, the cap per request, zero-size files."""

from __future__ import annotations

import pytest

from tests.support.allocation_rules import ids
from tests.support.factories import asset

# --- Rule 1: budget ---------------------------------------------------------------------------


def test_second_request_with_same_free_space_gets_nothing_when_first_filled(service, clock):
    svc = service()
    svc.add(*(asset(n, size_mb=1000) for n in range(4)), now=clock())

    first = svc.allocate("node-a", 2)
    second = svc.allocate("node-a", 2)

    assert len(first) == 2
    assert sum(lease["reserved_mb"] for lease in first) == 2000
    assert second == []
    # The budget is per node: another node with the same space gets the other two.
    assert len(svc.allocate("node-b", 2)) == 2


def test_more_reported_space_adds_only_the_difference(service, clock):
    svc = service()
    svc.add(*(asset(n, size_mb=1000) for n in range(6)), now=clock())

    svc.allocate("node-a", 2)
    more = svc.allocate("node-a", 3)

    # 3 GiB reported, 2000 MiB already reserved: room for one more 1000 MiB file.
    assert len(more) == 1


def test_released_lease_frees_budget_again(service, clock):
    svc = service()
    svc.add(*(asset(n, size_mb=1000) for n in range(4)), now=clock())
    first = svc.allocate("node-a", 2)
    assert svc.allocate("node-a", 2) == []

    assert svc.release(first[0]["id"], "node-a") == 200
    again = svc.allocate("node-a", 2)

    assert len(again) == 1
    node = svc.client.get("/nodes/node-a").json()
    assert (node["open_leases"], node["reserved_mb"]) == (2, 2000)


@pytest.mark.parametrize(
    ("size_mb", "free_space_gb", "fits"),
    [
        (1024, 1, True),
        (1024.5, 1, False),
        (512, 0.5, True),
        (513, 0.5, False),
        (10 * 1024, 10, True),
        (10 * 1024 + 1, 10, False),
    ],
)
def test_one_gib_is_1024_mib(service, clock, size_mb, free_space_gb, fits):
    svc = service()
    svc.add(asset(1, size_mb=size_mb), now=clock())

    leases = svc.allocate("node-a", free_space_gb)

    assert ids(leases) == (["asset-1"] if fits else [])


def test_node_records_reported_free_space_in_mib(service, clock):
    svc = service()
    svc.allocate("node-a", 2.5)

    assert svc.client.get("/nodes/node-a").json()["free_space_mb"] == 2560


# --- Rule 4: unknown sizes --------------------------------------------------------------------


def test_unknown_size_counts_as_default_1024_mib(service, clock):
    svc = service()
    svc.add(asset(1, size_mb=None), now=clock())

    assert svc.allocate("node-small", 1023 / 1024) == []
    [lease] = svc.allocate("node-a", 1)

    assert lease["size_mb"] is None
    assert lease["reserved_mb"] == 1024
    node = svc.client.get("/nodes/node-a").json()
    assert node["reserved_mb"] == 1024
    [allocation] = svc.client.get("/allocations").json()["items"]
    assert allocation["reserved_mb"] == 1024


def test_unknown_size_uses_setting(service, clock):
    svc = service(unknown_size_mb=300)
    svc.add(asset(1, size_mb=None), asset(2, size_mb=None), asset(3, size_mb=None), now=clock())

    leases = svc.allocate("node-a", 0.5)

    # 512 MiB holds one 300 MiB assumption, not two.
    assert [lease["reserved_mb"] for lease in leases] == [300]
    assert svc.client.get("/ranking").json()[0]["budget_mb"] == 300


# --- Rule 5: cap per request ------------------------------------------------------------------


def test_max_assets_per_allocation_caps_the_list(service, clock):
    svc = service(max_assets_per_allocation=3)
    svc.add(*(asset(n, priority=n, size_mb=10) for n in range(1, 11)), now=clock())

    first = svc.allocate("node-a", 100)
    second = svc.allocate("node-a", 100)

    assert ids(first) == ["asset-10", "asset-9", "asset-8"]
    assert ids(second) == ["asset-7", "asset-6", "asset-5"]


# --- Zero-size files --------------------------------------------------------------------------


def test_zero_size_file_fits_a_spent_budget(service, clock):
    svc = service()
    svc.add(
        asset("full", priority=9, size_mb=1024), asset("empty", priority=5, size_mb=0), now=clock()
    )

    assert ids(svc.allocate("node-a", 1)) == ["asset-full", "asset-empty"]


def test_every_rank_level_is_reachable(service, clock):
    svc = service(replication_target=20, copy_penalty=0.05)
    svc.add(asset("low", priority=1), asset("high", priority=10), now=clock())

    assert [row["id"] for row in svc.client.get("/ranking").json()] == ["asset-high", "asset-low"]
    assert ids(svc.allocate("node-a", 10)) == ["asset-high", "asset-low"]
