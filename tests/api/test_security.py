"""The admin token, rate limits, the body limit, and the one error shape."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from priorizer.catalog import service as catalog_service
from tests.support.ckan_portal import CkanPortal
from tests.support.factories import add_assets, asset, table_snapshot

TOKEN = "a-long-admin-token-0123456789"
ADMIN_CALLS = [
    ("post", "/update-ckan", {"updates": [{"asset_id": "asset-1", "new_priority": 9}]}),
    ("post", "/assets/withdraw", {"asset_ids": ["asset-2"]}),
    ("post", "/assets/reinstate", {"asset_ids": ["asset-2"]}),
    ("post", "/harvest", {"url": "(a local CKAN portal)"}),
]


def error_shape(response, status: int) -> dict:
    body = response.json()
    assert response.status_code == status, response.text
    assert set(body) == {"detail", "status", "request_id"}, body
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS, ids=[c[1] for c in ADMIN_CALLS])
def test_admin_actions_need_the_admin_token(start_service, clock, method, path, body):
    client, database, settings = start_service(admin_token=TOKEN)
    add_assets(database, settings, [asset(1), asset(2)], clock())
    portal = CkanPortal([]).start()
    if path == "/harvest":
        body = {"url": portal.base_url}
    before = table_snapshot(database)

    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        refused = getattr(client, method)(path, json=body, headers=headers)
        answer = error_shape(refused, 401)
        assert refused.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in refused.text and "admin" in answer["detail"]
    assert table_snapshot(database) == before  # refused: nothing changed

    accepted = getattr(client, method)(
        path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert accepted.status_code in (200, 202), accepted.text


def test_reads_health_and_node_calls_need_no_admin_token(start_service, clock):
    client, database, settings = start_service(admin_token=TOKEN)
    add_assets(database, settings, [asset(1)], clock())
    for path in ("/health", "/status", "/assets", "/metrics", "/"):
        assert client.get(path).status_code == 200, path
    assert client.post("/allocate", json={"node_id": "n-1", "free_space_gb": 1}).status_code == 200


def test_the_admin_token_is_never_logged(start_service, caplog):
    client, _, _ = start_service(admin_token=TOKEN)
    caplog.set_level(logging.DEBUG)
    client.post("/update-ckan", json={"updates": []}, headers={"Authorization": f"Bearer {TOKEN}"})
    client.post("/update-ckan", json={"updates": []}, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert caplog.records, "requests should be logged"
    assert not [r for r in caplog.records if TOKEN in r.getMessage() or TOKEN in str(r.__dict__)]


def test_a_short_admin_token_stops_start_up():
    from pydantic import ValidationError

    from priorizer.config import Settings

    with pytest.raises(ValidationError, match="PRIORIZER_ADMIN_TOKEN"):
        Settings.of(admin_token="short")


def test_nodes_are_rate_limited_per_node_with_retry_after(start_service, clock):
    client, database, settings = start_service(rate_limit_per_node="3/minute")
    add_assets(database, settings, [asset(i) for i in range(20)], clock())
    for _ in range(3):
        ok = client.post("/allocate", json={"node_id": "n-1", "free_space_gb": 0.001})
        assert ok.status_code == 200, ok.text
    before = table_snapshot(database)
    limited = client.post("/allocate", json={"node_id": "n-1", "free_space_gb": 1})
    body = error_shape(limited, 429)
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "node" in body["detail"]
    # The same node on another endpoint counts too; another node does not.
    assert client.post("/renew", json={"node_id": "n-1"}).status_code == 429
    assert table_snapshot(database) == before
    assert client.post("/allocate", json={"node_id": "n-2", "free_space_gb": 1}).status_code == 200


def test_nodes_are_rate_limited_per_client_address(start_service, clock):
    client, database, settings = start_service(rate_limit_per_address="5/minute")
    add_assets(database, settings, [asset(1)], clock())
    answers = [
        client.post("/allocate", json={"node_id": f"n-{i}", "free_space_gb": 1}) for i in range(7)
    ]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [200] * 5 + [429] * 2, [answer.text for answer in answers]
    assert client.get("/status").status_code == 200  # reads are not node calls


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "streamed"])
def test_request_bodies_over_the_limit_are_refused_with_413(start_service, clock, chunked):
    client, database, settings = start_service(max_request_bytes=2048)
    add_assets(database, settings, [asset(1)], clock())
    before = table_snapshot(database)
    payload = (
        b'{"updates": ['
        + b",".join(b'{"asset_id": "asset-1", "new_priority": 9}' for _ in range(100))
        + b"]}"
    )
    assert len(payload) > 2048
    if chunked:
        response = client.post(
            "/update-ckan",
            content=iter([payload[:1000], payload[1000:]]),
            headers={"content-type": "application/json"},
        )
    else:
        response = client.post(
            "/update-ckan", content=payload, headers={"content-type": "application/json"}
        )
    body = error_shape(response, 413)
    assert "MAX_REQUEST_BYTES" in body["detail"]
    assert table_snapshot(database) == before
    small = client.post(
        "/update-ckan", json={"updates": [{"asset_id": "asset-1", "new_priority": 9}]}
    )
    assert small.status_code == 200


def test_every_error_has_one_shape(client):
    error_shape(client.get("/no/such/route"), 404)
    error_shape(client.delete("/status"), 405)
    error_shape(client.get("/assets/unknown-asset"), 404)
    invalid = error_shape(client.post("/allocate", json={"free_space_gb": -1}), 422)
    assert invalid["detail"][0]["loc"][-1] == "free_space_gb"
    given = client.get("/no/such/route", headers={"X-Request-Id": "trace-42"})
    assert error_shape(given, 404)["request_id"] == "trace-42"


def test_an_unexpected_error_shows_no_trace_or_sql(settings, clock, database, monkeypatch, caplog):
    from priorizer.web.app import create_app

    def broken(*_args, **_kwargs):
        raise RuntimeError("SELECT secret FROM assets WHERE password = 'hunter2'")

    monkeypatch.setattr(catalog_service, "list_assets", broken)
    with TestClient(create_app(settings, clock=clock), raise_server_exceptions=False) as client:
        response = client.get("/assets")
    body = error_shape(response, 500)
    assert "SELECT" not in response.text and "hunter2" not in response.text
    assert "Traceback" not in response.text and "RuntimeError" not in response.text
    assert "log" in body["detail"]
    # The log has it, with the request id, for the operator.
    logged = [r for r in caplog.records if r.exc_info and body["request_id"] in r.getMessage()]
    assert logged and "hunter2" in str(logged[0].exc_info[1])
