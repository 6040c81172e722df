"""Open mode (NODE_AUTH off, the seed's default): anyone may name any node. What a client
that makes up node ids can do is bounded (README, Security)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.factories import asset
from tests.node_api import NodeApi


@pytest.fixture
def service(start_service, clock) -> Callable[..., NodeApi]:
    return lambda **overrides: NodeApi(*start_service(**overrides), clock)


@pytest.fixture
def api(service) -> NodeApi:
    return service()


# --- (a) Made-up node ids failing the top asset -------------------------------------------------


def fail_top(api: NodeApi, node_ids: list[str]) -> list[dict]:
    results = []
    for node_id in node_ids:
        assert "asset-top" in api.allocate(node_id, 0.1)
        results.append(api.failed("asset-top", node_id, reason_code="http_404"))
    return results


def test_three_made_up_nodes_no_longer_make_the_top_asset_unreachable(api):
    api.add(asset("top", priority=10), asset("next", priority=4))

    results = fail_top(api, ["ghost-1", "ghost-2", "ghost-3"])  # six anonymous requests

    assert [(r["failed_nodes"], r["unreachable"]) for r in results] == [
        (1, False),
        (2, False),
        (3, False),
    ]
    assert [r["failure_weight"] for r in results] == [0.33, 0.67, 1.0]
    assert api.asset("asset-top")["state"] == "active"
    assert api.allocate("honest", 0.1) == ["asset-top"]


def test_failures_from_nodes_without_a_record_still_add_up(api):
    api.add(asset("top", priority=10))

    results = fail_top(api, [f"ghost-{n}" for n in range(9)])

    assert [r["unreachable"] for r in results] == [False] * 8 + [True]
    assert "9 nodes" in api.asset("asset-top")["state_reason"]


def test_failures_from_nodes_with_a_record_weigh_in_full(api):
    api.prove("node-a", "node-b", "node-c")
    api.add(asset("top", priority=10))

    results = fail_top(api, ["node-a", "node-b", "node-c"])

    assert [r["failure_weight"] for r in results] == [1.0, 2.0, 3.0]
    assert results[-1]["unreachable"] is True
