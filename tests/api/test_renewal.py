"""What POST /renew answers (the lease arithmetic itself is in test_lifecycle_renewal.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.support.factories import asset
from tests.support.node_api import NodeApi


def test_a_renewal_that_renewed_nothing_names_no_expiry(client, database, settings, clock):
    api = NodeApi(client, database, settings, clock)
    api.add(asset(1))
    api.allocate("node-a")

    nothing = client.post("/renew", json={"node_id": "node-a", "asset_ids": ["asset-404"]})
    clock.advance(hours=25)
    expired = client.post("/renew", json={"node_id": "node-a"})

    assert nothing.status_code == 200
    assert nothing.json() == {
        "status": "success",
        "renewed": 0,
        "expires_at": None,
        "not_renewed": ["asset-404"],
    }
    assert (expired.json()["renewed"], expired.json()["expires_at"]) == (0, None)


def test_a_renewal_names_the_new_expiry(client, database, settings, clock):
    api = NodeApi(client, database, settings, clock)
    api.add(asset(1))
    api.allocate("node-a")
    clock.advance(hours=1)

    body = client.post("/renew", json={"node_id": "node-a"}).json()

    assert body["renewed"] == 1
    assert datetime.fromisoformat(body["expires_at"]) == clock() + timedelta(hours=24)
