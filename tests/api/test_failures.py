"""Failures (POST /fail): reason codes and whose fault they say it is."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.factories import asset
from tests.support.node_api import NodeApi


@pytest.fixture
def service(start_service, clock) -> Callable[..., NodeApi]:
    return lambda **overrides: NodeApi(*start_service(**overrides), clock)


@pytest.fixture
def api(service) -> NodeApi:
    return service()


# --- Reason codes -------------------------------------------------------------------------------


def test_a_code_alone_is_a_reason_and_is_stored_with_the_failure(api):
    api.add(asset(1))
    api.allocate("node-a")

    failure = api.failed("asset-1", "node-a", reason_code="http_410")

    assert (failure["reason_code"], failure["counts_against_asset"]) == ("http_410", True)
    row = api.lease("asset-1", "node-a")
    assert (row["status"], row["reason_code"], row["note"]) == ("failed", "http_410", None)
    [closed] = api.asset("asset-1")["history"]
    assert (closed["reason_code"], closed["note"]) == ("http_410", None)


def test_a_code_and_a_text_are_both_kept(api):
    api.add(asset(1))
    api.allocate("node-a")

    api.failed("asset-1", "node-a", reason_code="not_a_file", reason="got text/html, 69 bytes")

    row = api.lease("asset-1", "node-a")
    assert (row["reason_code"], row["note"]) == ("not_a_file", "got text/html, 69 bytes")


def test_a_text_alone_is_recorded_as_unspecified(api):
    api.add(asset(1))
    api.allocate("node-a")

    failure = api.failed("asset-1", "node-a", reason="HTTP 404")

    assert (failure["reason_code"], failure["counts_against_asset"]) == ("unspecified", True)
    assert api.lease("asset-1", "node-a")["reason_code"] == "unspecified"


def test_other_allocations_have_no_reason_code(api):
    api.add(asset(1), asset(2))
    api.allocate("node-a")
    api.completed("asset-1", "node-a")

    assert {row["reason_code"] for row in api.allocations(node_id="node-a")} == {None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({}, "reason", id="neither"),
        pytest.param({"reason": None, "reason_code": None}, "reason", id="both-null"),
        pytest.param({"reason_code": "http_500"}, "reason_code", id="unknown-code"),
        pytest.param({"reason_code": "HTTP_404"}, "reason_code", id="code-case"),
        pytest.param({"reason_code": 404, "reason": "x"}, "reason_code", id="code-int"),
    ],
)
def test_a_failure_without_a_valid_reason_is_refused_and_changes_nothing(api, body, field):
    api.add(asset(1))
    api.allocate("node-a")
    before = api.snapshot()

    response = api.fail("asset-1", "node-a", **body)

    assert response.status_code == 422, response.text
    fields = [problem["loc"][-1] for problem in response.json()["detail"]]
    assert field in fields
    assert api.snapshot() == before


@pytest.mark.parametrize("code", ["disk_full", "shutting_down", "node_error"])
def test_node_side_failures_never_count_toward_the_asset_threshold(service, code):
    api = service(replication_target=1, failure_threshold=1)
    api.add(asset(1))
    api.allocate("node-a")

    failure = api.failed("asset-1", "node-a", reason_code=code)

    assert (failure["failed_nodes"], failure["unreachable"]) == (0, False)
    assert failure["counts_against_asset"] is False
    detail = api.asset("asset-1")
    assert (detail["state"], detail["failed_nodes"]) == ("active", 0)
    # An asset-side failure from another node (with a record) does count: threshold 1.
    api.prove("node-b")
    api.allocate("node-b")
    assert api.failed("asset-1", "node-b", reason_code="http_404")["unreachable"] is True


# --- A node is not given back what it failed ----------------------------------------------------


@pytest.mark.parametrize(
    "reasons",
    [
        pytest.param(
            {"asset-404": {"reason_code": "http_404"}, "asset-html": {"reason_code": "not_a_file"}},
            id="codes",
        ),
        pytest.param(
            {"asset-404": {"reason": "HTTP 404"}, "asset-html": {"reason": "an HTML page"}},
            id="unspecified",
        ),
    ],
)
def test_a_node_failing_dead_files_is_not_given_them_again_nor_punished(api, clock, reasons):
    """The issue's loop: one 404 URL and one HTML page; allocate -> fail, seven times."""
    api.add(asset("404", priority=9), asset("html", priority=8))
    handed = []
    for _ in range(7):
        given = api.allocate("node-a")
        handed.append(given)
        for asset_id in given:
            api.failed(asset_id, "node-a", **reasons[asset_id])
        clock.advance(minutes=10)

    assert handed == [["asset-404", "asset-html"]] + [[]] * 6
    node = api.node("node-a")
    assert (node["failures"], node["lease_cap"], node["open_leases"]) == (2, 200, 0)
    for asset_id in ("asset-404", "asset-html"):
        assert (api.asset(asset_id)["state"], api.asset(asset_id)["failed_nodes"]) == ("active", 1)
    # Other nodes still get them: a failure shuts out only the node that had it.
    assert api.allocate("node-b") == ["asset-404", "asset-html"]


def test_a_failed_asset_comes_back_to_its_node_after_failed_retry_hours(service, clock):
    api = service(failed_retry_hours=6)
    api.add(asset(1))
    api.allocate("node-a")
    api.failed("asset-1", "node-a", reason_code="connection")

    clock.advance(hours=5, minutes=59)
    assert api.allocate("node-a") == []
    clock.advance(minutes=1)  # the origin may be back by now

    assert api.allocate("node-a") == ["asset-1"]


def test_a_node_failing_the_top_asset_gets_the_next_one_instead(api):
    api.add(asset(1, priority=9), asset(2, priority=5))
    assert api.allocate("node-a", 0.1) == ["asset-1"]
    api.failed("asset-1", "node-a", reason_code="http_410")

    assert api.allocate("node-a", 0.1) == ["asset-2"]


@pytest.mark.parametrize("code", ["http_404", "not_a_file", "disk_full", "shutting_down", None])
def test_only_a_node_error_costs_the_node_standing(service, code):
    api = service(lease_cap_initial=50, lease_cap_min=10, lease_cap_max=100)
    api.add(*(asset(n, size_mb=1) for n in range(3)))
    held = api.allocate("node-a")
    api.completed(held[0], "node-a")

    fields = {"reason_code": code} if code else {"reason": "it went wrong"}
    api.failed(held[1], "node-a", **fields)

    node = api.node("node-a")
    assert (node["lease_cap"], node["consecutive_successes"], node["failures"]) == (50, 1, 1)
    api.failed(held[2], "node-a", reason_code="node_error")
    node = api.node("node-a")
    assert (node["lease_cap"], node["consecutive_successes"], node["failures"]) == (45, 0, 2)
