"""A lease's life after /allocate (allocation/lifecycle.py), through HTTP: orphaned by its
asset's withdrawal."""

from __future__ import annotations

from tests.support.factories import asset
from tests.support.lifecycle import at

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
