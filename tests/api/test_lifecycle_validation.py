"""Reports on a lease (/complete, /fail), through HTTP: a bad body is refused naming its field
and changes nothing; edge values are accepted."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.lifecycle import MAGNET, SUM_A

JSON_HEADERS = {"content-type": "application/json"}


# --- Validation ---------------------------------------------------------------------------------


def error_fields(response: httpx.Response) -> list[str]:
    fields = []
    for problem in response.json()["detail"]:
        names = [part for part in problem["loc"] if isinstance(part, str) and part != "body"]
        fields.extend(names[-1:])
    return fields


OK_COMPLETE = {"asset_id": "asset-1", "node_id": "node-a"}
OK_FAIL = {"asset_id": "asset-1", "node_id": "node-a", "reason": "HTTP 404"}

BAD_BODIES = [
    # /complete
    pytest.param("/complete", {"checksum_sha256": "a" * 63}, "checksum_sha256", id="sum-63"),
    pytest.param("/complete", {"checksum_sha256": "a" * 65}, "checksum_sha256", id="sum-65"),
    pytest.param("/complete", {"checksum_sha256": "g" * 64}, "checksum_sha256", id="sum-not-hex"),
    pytest.param(
        "/complete", {"checksum_sha256": " " + "a" * 63}, "checksum_sha256", id="sum-space"
    ),
    pytest.param("/complete", {"checksum_sha256": ""}, "checksum_sha256", id="sum-empty"),
    pytest.param("/complete", {"checksum_sha256": 5}, "checksum_sha256", id="sum-int"),
    pytest.param(
        "/complete", {"magnet_link": "http://example.org/x"}, "magnet_link", id="magnet-http"
    ),
    pytest.param("/complete", {"magnet_link": "magnet:xt=1"}, "magnet_link", id="magnet-no-?"),
    pytest.param("/complete", {"magnet_link": MAGNET + "\n"}, "magnet_link", id="magnet-newline"),
    pytest.param(
        "/complete", {"magnet_link": "magnet:?" + "x" * 5000}, "magnet_link", id="magnet-long"
    ),
    pytest.param("/complete", {"size_mb": -1}, "size_mb", id="size-negative"),
    # An empty download is a failure to report, not a size: 0 would make leases free.
    pytest.param("/complete", {"size_mb": 0}, "size_mb", id="size-zero"),
    pytest.param("/complete", {"size_mb": "12"}, "size_mb", id="size-string"),
    pytest.param("/complete", {"size_mb": 1e308}, "size_mb", id="size-huge"),
    pytest.param("/complete", {"checksum": SUM_A}, "checksum", id="extra-field"),
    pytest.param("/complete", {"node_id": "node a"}, "node_id", id="node-space"),
    pytest.param("/complete", {"node_id": ""}, "node_id", id="node-empty"),
    pytest.param("/complete", {"node_id": "n" * 129}, "node_id", id="node-129"),
    pytest.param("/complete", {"node_id": None}, "node_id", id="node-null"),
    pytest.param("/complete", {"asset_id": ""}, "asset_id", id="asset-empty"),
    pytest.param("/complete", {"asset_id": "asset\x00-1"}, "asset_id", id="asset-nul"),
    # /fail
    pytest.param("/fail", {"reason": ""}, "reason", id="reason-empty"),
    pytest.param("/fail", {"reason": None}, "reason", id="reason-null"),
    pytest.param("/fail", {"reason": "disk\x00full"}, "reason", id="reason-nul"),
    pytest.param("/fail", {"reason": "x" * 2001}, "reason", id="reason-2001"),
    pytest.param("/fail", {"reason": 404}, "reason", id="reason-int"),
    pytest.param("/fail", {"note": "x"}, "note", id="extra-field"),
    pytest.param("/fail", {"node_id": "node/a"}, "node_id", id="node-slash"),
    # /renew
    pytest.param("/renew", {"asset_ids": "asset-1"}, "asset_ids", id="renew-ids-string"),
    pytest.param("/renew", {"asset_ids": [""]}, "asset_ids", id="renew-empty-id"),
    pytest.param("/renew", {"node_id": "node a"}, "node_id", id="renew-bad-node"),
    pytest.param("/renew", {"all": True}, "all", id="renew-extra-field"),
]


@pytest.mark.parametrize(("route", "change", "field"), BAD_BODIES)
def test_bad_report_names_the_field_and_changes_nothing(node_a_holds_asset_1, route, change, field):
    api = node_a_holds_asset_1
    base = {"/complete": OK_COMPLETE, "/fail": OK_FAIL, "/renew": {"node_id": "node-a"}}[route]
    before = api.snapshot()

    response = api.client.post(route, json={**base, **change})

    assert response.status_code == 422, response.text
    assert field in error_fields(response)
    assert api.snapshot() == before


@pytest.mark.parametrize(
    ("route", "missing"),
    [
        ("/complete", "asset_id"),
        ("/complete", "node_id"),
        ("/fail", "asset_id"),
        ("/fail", "node_id"),
        ("/fail", "reason"),
        ("/renew", "node_id"),
    ],
)
def test_missing_field_is_named(node_a_holds_asset_1, route, missing):
    api = node_a_holds_asset_1
    base = {"/complete": OK_COMPLETE, "/fail": OK_FAIL, "/renew": {"node_id": "node-a"}}[route]
    before = api.snapshot()

    response = api.client.post(route, json={k: v for k, v in base.items() if k != missing})

    assert response.status_code == 422
    assert missing in error_fields(response)
    assert api.snapshot() == before


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "-0.5"])
def test_non_finite_or_negative_size_is_refused(node_a_holds_asset_1, number):
    api = node_a_holds_asset_1
    before = api.snapshot()
    body = '{"asset_id": "asset-1", "node_id": "node-a", "size_mb": ' + number + "}"

    response = api.client.post("/complete", content=body, headers=JSON_HEADERS)

    assert response.status_code == 422
    assert error_fields(response) == ["size_mb"]
    json.dumps(response.json())  # the error itself is valid JSON
    assert api.snapshot() == before


def test_valid_edge_values_are_accepted(node_a_holds_asset_1):
    api = node_a_holds_asset_1

    response = api.complete(
        "asset-1", "node-a", checksum_sha256="F" * 64, magnet_link="magnet:?", size_mb=0.001
    )

    assert response.status_code == 200, response.text
    [holder] = api.asset("asset-1")["holders"]
    assert (holder["checksum_sha256"], holder["magnet_link"]) == ("f" * 64, "magnet:?")
