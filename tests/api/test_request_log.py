"""Every request gets an id, in its response's X-Request-Id header and in one log line that
names its route, status and duration (logs.py)."""

from __future__ import annotations

import json
import logging

import pytest

from priorizer import logs
from tests.support.factories import add_assets, asset


@pytest.fixture
def access_records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="priorizer.access")
    return caplog


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "priorizer.access"]


def test_a_request_gets_an_id_in_its_header_and_its_log_line(
    client, database, settings, clock, access_records
):
    add_assets(database, settings, [asset("with/slash")], clock())

    response = client.get("/assets/asset-with/slash")

    assert response.status_code == 200
    request_id = response.headers["X-Request-Id"]
    assert len(request_id) == 16
    [line] = _lines(access_records)
    assert line.request_id == request_id  # type: ignore[attr-defined]
    assert (line.method, line.route, line.status) == (  # type: ignore[attr-defined]
        "GET",
        "/assets/{asset_id:path}",  # the route, not the path: one series per endpoint
        200,
    )
    assert 0 < line.duration_ms < 10_000  # type: ignore[attr-defined]


def test_a_callers_request_id_is_kept_and_a_bad_one_replaced(client, access_records):
    kept = client.get("/health", headers={"X-Request-Id": "dispatcher-42.a:b"})
    replaced = client.get("/health", headers={"X-Request-Id": "no spaces\tor tabs"})
    too_long = client.get("/health", headers={"X-Request-Id": "x" * 65})

    assert kept.headers["X-Request-Id"] == "dispatcher-42.a:b"
    assert replaced.headers["X-Request-Id"] not in ("no spaces\tor tabs", "")
    assert len(too_long.headers["X-Request-Id"]) == 16
    ids = [line.request_id for line in _lines(access_records)]  # type: ignore[attr-defined]
    assert ids[0] == "dispatcher-42.a:b"
    assert ids[1:] == [replaced.headers["X-Request-Id"], too_long.headers["X-Request-Id"]]


def test_refused_and_unknown_requests_are_logged_with_their_status(client, access_records):
    assert client.post("/allocate", json={"free_space_gb": -1}).status_code == 422
    assert client.get("/no-such-page").status_code == 404

    statuses = [(line.route, line.status) for line in _lines(access_records)]  # type: ignore[attr-defined]
    assert statuses == [("/allocate", 422), ("/no-such-page", 404)]


def test_json_lines_carry_the_request_fields():
    record = logging.LogRecord(
        "priorizer.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None
    )
    record.request_id, record.route, record.status, record.duration_ms = "abc", "/x", 200, 1.5

    line = json.loads(logs.JsonLines().format(record))

    assert line["message"] == "GET /x"
    assert (line["level"], line["logger"]) == ("INFO", "priorizer.access")
    assert (line["request_id"], line["route"], line["status"], line["duration_ms"]) == (
        "abc",
        "/x",
        200,
        1.5,
    )
