"""Node credentials: enrollment, and a node acting only on its own leases."""

from __future__ import annotations

import pytest

from tests.support.factories import add_assets, asset, table_snapshot

ADMIN = "a-long-admin-token-0123456789"
SECRET = "an-enrollment-secret-0123456789"


@pytest.fixture
def api(start_service, clock):
    client, database, settings = start_service(
        admin_token=ADMIN, enrollment_secret=SECRET, node_auth=True
    )
    add_assets(database, settings, [asset(i, size_mb=10.0) for i in range(6)], clock())
    return client, database


def enroll(client, node_id, *, admin=True, rotate=False):
    headers = {"Authorization": f"Bearer {ADMIN}"} if admin else {"X-Enrollment-Secret": SECRET}
    response = client.post(
        "/nodes/enroll", json={"node_id": node_id, "rotate": rotate}, headers=headers
    )
    return response


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_enrollment_by_admin_or_secret_gives_a_token_once(api):
    client, database = api
    by_admin = enroll(client, "node-a")
    assert by_admin.status_code == 201 and by_admin.json()["node_id"] == "node-a"
    by_secret = enroll(client, "node-b", admin=False)
    assert by_secret.status_code == 201
    assert len(by_secret.json()["token"]) >= 40
    # Neither credential: refused, nothing stored.
    before = table_snapshot(database)
    nobody = client.post("/nodes/enroll", json={"node_id": "node-c"})
    assert nobody.status_code == 401
    wrong = client.post(
        "/nodes/enroll",
        json={"node_id": "node-c"},
        headers={"X-Enrollment-Secret": "guess-guess-guess-guess"},
    )
    assert wrong.status_code == 401
    assert table_snapshot(database) == before
    # The token is not stored: only its digest.
    tokens = {by_admin.json()["token"], by_secret.json()["token"]}
    assert not any(t in str(rows) for t in tokens for rows in table_snapshot(database).values())
    # Enrolled already: the secret cannot take the node over; only an admin rotates.
    assert enroll(client, "node-b", admin=False).status_code == 409
    assert enroll(client, "node-b", admin=False, rotate=True).status_code == 403
    rotated = enroll(client, "node-b", rotate=True)
    assert rotated.status_code == 201
    old, new = by_secret.json()["token"], rotated.json()["token"]
    assert client.post("/renew", json={"node_id": "node-b"}, headers=bearer(old)).status_code == 401
    assert client.post("/renew", json={"node_id": "node-b"}, headers=bearer(new)).status_code == 200


def test_node_calls_need_the_node_s_own_token(api):
    client, _ = api
    token = enroll(client, "node-a").json()["token"]
    assert client.post("/allocate", json={"free_space_gb": 1}).status_code == 401
    assert (
        client.post(
            "/allocate", json={"free_space_gb": 1}, headers=bearer("not-a-token")
        ).status_code
        == 401
    )
    got = client.post("/allocate", json={"free_space_gb": 0.03}, headers=bearer(token))
    assert got.status_code == 200 and got.json()
    assert {item["node_id"] for item in got.json()} == {"node-a"}  # the token's node
    assert (
        client.post(
            "/allocate", json={"node_id": "node-b", "free_space_gb": 1}, headers=bearer(token)
        ).status_code
        == 403
    )


@pytest.mark.parametrize("action", ["release", "complete", "fail", "renew"])
def test_node_a_cannot_touch_node_b_s_lease(api, action):
    client, database = api
    token_a = enroll(client, "node-a").json()["token"]
    token_b = enroll(client, "node-b").json()["token"]
    leased = client.post("/allocate", json={"free_space_gb": 0.01}, headers=bearer(token_b))
    asset_id = leased.json()[0]["id"]
    before = table_snapshot(database)

    bodies = {
        "release": {"asset_id": asset_id},
        "complete": {"asset_id": asset_id},
        "fail": {"asset_id": asset_id, "reason": "HTTP 404"},
        "renew": {"asset_ids": [asset_id]},
    }
    # Writing B's id with A's token: refused outright.
    as_b = client.post(
        f"/{action}", json={**bodies[action], "node_id": "node-b"}, headers=bearer(token_a)
    )
    assert as_b.status_code == 403, as_b.text
    # Writing its own id: A holds no such lease, so nothing happens to B's.
    as_a = client.post(
        f"/{action}", json={**bodies[action], "node_id": "node-a"}, headers=bearer(token_a)
    )
    if action == "renew":
        assert as_a.status_code == 200 and as_a.json()["renewed"] == 0
        assert as_a.json()["not_renewed"] == [asset_id]
    else:
        assert as_a.status_code == 404, as_a.text
    after = table_snapshot(database)
    allocations = [row for row in after["allocations"] if asset_id in str(row)]
    assert allocations == [row for row in before["allocations"] if asset_id in str(row)]
    # B itself can.
    own = client.post(
        f"/{action}", json={**bodies[action], "node_id": "node-b"}, headers=bearer(token_b)
    )
    assert own.status_code == 200, own.text


def test_a_revoked_token_stops_working(api):
    client, _ = api
    token = enroll(client, "node-a").json()["token"]
    assert client.post("/nodes/node-a/revoke").status_code == 401  # admin only
    assert client.post("/nodes/node-a/revoke", headers=bearer(ADMIN)).status_code == 200
    refused = client.post("/renew", json={"node_id": "node-a"}, headers=bearer(token))
    assert refused.status_code == 403 and "revoked" in refused.json()["detail"], refused.text


def test_a_revoked_node_stays_revoked_until_an_admin_reinstates_it(api, clock):
    client, database = api
    old = enroll(client, "auth-a", admin=False).json()["token"]
    revoked = client.post("/nodes/auth-a/revoke", headers=bearer(ADMIN))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] == "2026-01-15T12:00:00Z"
    before = table_snapshot(database)

    # The secret no longer buys the node a token, nor does an admin's enroll or rotate.
    for admin, rotate in ((False, False), (True, False), (True, True)):
        again = enroll(client, "auth-a", admin=admin, rotate=rotate)
        assert again.status_code == 403, again.text
        assert "revoked" in again.json()["detail"]
        assert "POST /nodes/auth-a/reinstate" in again.json()["detail"]
        assert "token" not in again.json()
    # Its old token is refused, saying why.
    call = client.post("/renew", json={"node_id": "auth-a"}, headers=bearer(old))
    assert call.status_code == 403 and "revoked" in call.json()["detail"], call.text
    assert table_snapshot(database) == before
    shown = client.get("/nodes/auth-a").json()
    assert shown["revoked_at"] == "2026-01-15T12:00:00Z"
    # Revoking again keeps the first time.
    clock.advance(hours=1)
    again = client.post("/nodes/auth-a/revoke", headers=bearer(ADMIN))
    assert again.json()["revoked_at"] == "2026-01-15T12:00:00Z"

    # Only an admin lifts it; then the node enrolls again, and only its new token works.
    assert client.post("/nodes/auth-a/reinstate").status_code == 401
    assert client.post("/nodes/auth-a/reinstate", headers=bearer("guess")).status_code == 401
    assert client.get("/nodes/auth-a").json()["revoked_at"] is not None
    lifted = client.post("/nodes/auth-a/reinstate", headers=bearer(ADMIN))
    assert lifted.status_code == 200, lifted.text
    assert lifted.json() == {"status": "reinstated", "node_id": "auth-a", "was_revoked": True}
    assert client.get("/nodes/auth-a").json()["revoked_at"] is None
    call = client.post("/renew", json={"node_id": "auth-a"}, headers=bearer(old))
    assert call.status_code == 401, call.text
    new = enroll(client, "auth-a", admin=False)
    assert new.status_code == 201, new.text
    call = client.post("/renew", json={"node_id": "auth-a"}, headers=bearer(new.json()["token"]))
    assert call.status_code == 200, call.text
    # Reinstating a node that is not revoked changes nothing; an unknown node is 404.
    twice = client.post("/nodes/auth-a/reinstate", headers=bearer(ADMIN))
    assert twice.status_code == 200 and twice.json()["was_revoked"] is False
    assert client.post("/nodes/ghost/reinstate", headers=bearer(ADMIN)).status_code == 404
    assert client.post("/nodes/ghost/revoke", headers=bearer(ADMIN)).status_code == 404


def test_without_node_auth_nodes_need_no_token(start_service, clock):
    client, database, settings = start_service()
    add_assets(database, settings, [asset(1)], clock())
    assert client.post("/allocate", json={"node_id": "n-1", "free_space_gb": 1}).status_code == 200
