"""A lease's life after /allocate (allocation/lifecycle.py), through HTTP: renewed, and expired
without a maintenance cycle."""

from __future__ import annotations

from datetime import timedelta

from tests.support.factories import asset
from tests.support.lifecycle import at

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


def test_renew_takes_at_most_ten_thousand_ids(api):
    api.add(asset(1))
    api.allocate("node-a")
    before = api.snapshot()

    response = api.renew("node-a", [f"asset-{n}" for n in range(10_001)])

    assert response.status_code == 422
    assert api.snapshot() == before
    assert api.renew("node-a", [f"asset-{n}" for n in range(10_000)]).json()["renewed"] == 1
