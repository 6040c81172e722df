"""Bodies the API cannot use: each gets a 422 that says what is wrong with it, and changes
nothing. Nested too deep, numbers too long, not JSON at all, and misspelt field names."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from priorizer.bodies import meant_field
from tests.support.factories import add_assets, asset, table_snapshot

JSON = {"content-type": "application/json"}

# One valid body per node endpoint (what it is does not matter: it must never get that far).
BODIES = {
    "/allocate": {"free_space_gb": 10, "node_id": "node-a"},
    "/release": {"asset_id": "asset-1", "node_id": "node-a"},
    "/complete": {"asset_id": "asset-1", "node_id": "node-a"},
    "/fail": {"asset_id": "asset-1", "node_id": "node-a", "reason": "HTTP 404"},
    "/renew": {"node_id": "node-a"},
    "/update-ckan": {"updates": [{"asset_id": "asset-1", "new_priority": 3}]},
}


@pytest.fixture
def catalog(database, settings, clock):
    add_assets(database, settings, [asset(1, priority=5), asset(2, priority=7)], clock())


@pytest.fixture
def lenient(client) -> TestClient:
    """The same app, answering 500 instead of raising, to see what a real client would get."""
    return TestClient(client.app, raise_server_exceptions=False)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def nodes(client) -> list[str]:
    return [node["id"] for node in client.get("/nodes").json()["items"]]


# --- JSON that parses badly -----------------------------------------------------------------------


@pytest.mark.parametrize("path", BODIES)
def test_json_nested_5000_deep_says_so(lenient, database, catalog, path):
    before = table_snapshot(database)
    body = json.dumps(BODIES[path])[:-1] + ', "extra": ' + nested(5000) + "}"

    response = lenient.post(path, content=body, headers=JSON)

    assert response.status_code == 422, response.text
    assert "nested too deeply" in response.json()["detail"]
    assert table_snapshot(database) == before


@pytest.mark.parametrize("depth", [50, 500, 900])
def test_deep_input_in_a_field_is_echoed_cut_short(lenient, database, catalog, depth):
    """Deep enough to parse, so the field's error echoes it: cut, never a 500."""
    before = table_snapshot(database)
    body = '{"free_space_gb": ' + nested(depth) + "}"

    response = lenient.post("/allocate", content=body, headers=JSON)

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "free_space_gb"]
    assert len(json.dumps(problem["input"])) < 100
    assert table_snapshot(database) == before


@pytest.mark.parametrize("path", ["/allocate", "/update-ckan", "/renew"])
def test_a_5000_digit_number_says_it_is_too_long(lenient, database, catalog, path):
    before = table_snapshot(database)
    body = json.dumps(BODIES[path])[:-1] + ', "size": ' + "9" * 5000 + "}"

    response = lenient.post(path, content=body, headers=JSON)

    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "a number in the request body is too long (more than 4300 digits)"
    )
    assert table_snapshot(database) == before


def test_a_body_that_is_not_utf8_says_so(client, database, catalog):
    before = table_snapshot(database)

    response = client.post("/allocate", content=b'{"node_id": "\xff"}', headers=JSON)

    assert response.status_code == 422
    assert "not UTF-8" in response.json()["detail"]
    assert table_snapshot(database) == before


# --- bodies not sent as JSON --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "came"),
    [
        ({"content-type": "text/plain"}, "came as text/plain"),
        ({"content-type": "text/plain; charset=utf-8"}, "came as text/plain"),
        ({"content-type": "application/x-www-form-urlencoded"}, "came as application/x-www-"),
        ({}, "had none"),
    ],
)
@pytest.mark.parametrize("path", ["/allocate", "/release", "/complete"])
def test_a_json_body_sent_as_something_else_says_to_send_json(
    client, database, catalog, path, headers, came
):
    before = table_snapshot(database)

    response = client.post(path, content=json.dumps(BODIES[path]).encode(), headers=headers)

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body"]
    assert "Content-Type: application/json" in problem["msg"]
    assert came in problem["msg"]
    assert table_snapshot(database) == before


def test_json_that_is_not_an_object_keeps_pydantic_s_words(client, catalog):
    response = client.post("/allocate", content='["free_space_gb"]', headers=JSON)

    [problem] = response.json()["detail"]
    assert "valid dictionary" in problem["msg"]  # sent as JSON: no hint about the type


# --- misspelt field names -----------------------------------------------------------------------


def test_a_misspelt_node_id_creates_no_ghost_node(client, database, catalog):
    """The issue's case: every call used to make a new node holding 24 h leases."""
    before = table_snapshot(database)

    for _ in range(3):
        response = client.post("/allocate", json={"free_space_gb": 0.001, "nodeId": "volunteer-a"})
        assert response.status_code == 422, response.text
        [problem] = response.json()["detail"]
        assert problem["loc"] == ["body", "nodeId"]
        assert problem["msg"] == "unknown field 'nodeId': did you mean 'node_id'?"
        assert problem["ctx"] == {"field": "node_id"}

    assert nodes(client) == []
    assert table_snapshot(database) == before


@pytest.mark.parametrize(
    ("path", "given", "meant"),
    [
        ("/allocate", "nodeId", "node_id"),
        ("/allocate", "NodeID", "node_id"),
        ("/allocate", "node-id", "node_id"),
        ("/allocate", "node", "node_id"),
        ("/allocate", "nod_id", "node_id"),
        ("/allocate", "freeSpaceGb", "free_space_gb"),
        ("/allocate", "free_space", "free_space_gb"),
        ("/allocate", "FREE-SPACE-GB", "free_space_gb"),
        ("/allocate", "free_space_mb", "free_space_gb"),
        ("/release", "assetId", "asset_id"),
        ("/release", "asset", "asset_id"),
        ("/release", "node", "node_id"),
        ("/complete", "checksum", "checksum_sha256"),
        ("/complete", "magnetLink", "magnet_link"),
        ("/complete", "nodeId", "node_id"),
        ("/fail", "Reason", "reason"),
        ("/renew", "assetIds", "asset_ids"),
        ("/renew", "node-id", "node_id"),
    ],
)
def test_a_near_miss_of_a_known_field_names_the_field_meant(
    client, database, catalog, path, given, meant
):
    before = table_snapshot(database)
    body = dict(BODIES[path])
    body[given] = body.pop(meant, "something")

    response = client.post(path, json=body)

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]  # only the near miss, not "field required" too
    assert problem["loc"] == ["body", given]
    assert problem["ctx"] == {"field": meant}
    assert repr(meant) in problem["msg"] and repr(given) in problem["msg"]
    assert table_snapshot(database) == before


def test_every_near_miss_is_reported(client, catalog):
    response = client.post("/allocate", json={"freeSpaceGb": 1, "nodeId": "n-1"})

    fields = {problem["loc"][-1]: problem["ctx"]["field"] for problem in response.json()["detail"]}
    assert fields == {"freeSpaceGb": "free_space_gb", "nodeId": "node_id"}


def test_seed_endpoints_still_ignore_other_unknown_fields(client, catalog):
    extras = {"hostname": "volunteer-7", "client_version": "2.1", "id": 3}

    allocated = client.post("/allocate", json={**BODIES["/allocate"], **extras})
    released = client.post("/release", json={**BODIES["/release"], **extras, "reason": "done"})

    assert allocated.status_code == 200, allocated.text
    assert {item["id"] for item in allocated.json()} == {"asset-1", "asset-2"}
    assert released.status_code == 200, released.text
    assert released.json() == {"status": "success", "message": "Asset released successfully"}


def test_a_near_miss_beside_the_field_it_resembles_is_ignored(client, catalog):
    """A client sending both spellings knows the field: the other is an ignored extra."""
    body = {"free_space_gb": 10, "node_id": "node-a", "nodeId": "node-a"}

    response = client.post("/allocate", json=body)

    assert response.status_code == 200, response.text
    assert nodes(client) == ["node-a"]


@pytest.mark.parametrize("path", ["/complete", "/fail", "/renew"])
def test_our_endpoints_still_refuse_every_other_unknown_field(client, database, catalog, path):
    before = table_snapshot(database)

    response = client.post(path, json={**BODIES[path], "sha256": "0" * 64})

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert (problem["type"], problem["loc"]) == ("extra_forbidden", ["body", "sha256"])
    assert table_snapshot(database) == before


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("nodeId", "node_id"),
        ("node id", "node_id"),
        ("NODE_ID", "node_id"),
        ("node", "node_id"),
        ("free", "free_space_gb"),
        ("freespace", "free_space_gb"),
        ("free_space_gib", "free_space_gb"),
        ("free_spcae_gb", "free_space_gb"),
        ("id", None),
        ("nod", None),  # too short to stand for node_id
        ("hostname", None),
        ("client_version", None),
        ("node_name", None),
        ("space", None),
        ("", None),
        ("__", None),
    ],
)
def test_meant_field(given, meant):
    assert meant_field(given, ["free_space_gb", "node_id"]) == meant


# --- the token of another node ------------------------------------------------------------------


def test_a_token_acting_for_another_node_is_told_whose_it_is(start_service):
    admin = "an-admin-token-0123456789"
    client, _database, _settings = start_service(admin_token=admin, node_auth=True)
    enrolled = client.post(
        "/nodes/enroll", json={"node_id": "auth-a"}, headers={"Authorization": f"Bearer {admin}"}
    )
    token = enrolled.json()["token"]

    response = client.post(
        "/renew", json={"node_id": "auth-b"}, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 403
    assert response.json()["detail"] == (
        "this token belongs to node 'auth-a': it cannot act for 'auth-b'"
    )


@pytest.mark.parametrize("known", [["reason", "reason_code"], ["reason_code", "reason"]])
def test_meant_field_prefers_the_same_name_to_a_longer_one_it_starts(known):
    assert meant_field("Reason", known) == "reason"
    assert meant_field("reas", known) == "reason"
    assert meant_field("REASON-CODE", known) == "reason_code"
