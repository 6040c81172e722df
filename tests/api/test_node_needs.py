"""What a rescue node needs from the server (issue 14): /allocate items carry the settled
checksum, the exact size and the copies' magnet links; a node lists its own open leases after a
restart; a node reports a copy it found damaged (/discard)."""

from __future__ import annotations

import pytest

from tests.api.test_lifecycle import MAGNET, SUM_A, SUM_B, Api
from tests.factories import asset

MAGNET_2 = MAGNET.replace("0123456789abcdef", "fedcba9876543210")


@pytest.fixture
def api(client, database, settings, clock) -> Api:
    return Api(client, database, settings, clock)


@pytest.fixture
def service(start_service, clock):
    return lambda **overrides: Api(*start_service(**overrides), clock)


def items(api: Api, node_id: str, free_space_gb: float = 100) -> list[dict]:
    response = api.client.post(
        "/allocate", json={"node_id": node_id, "free_space_gb": free_space_gb}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_first_copy_comes_with_nothing_to_verify_against(api):
    api.add(asset(1, size_mb=1.5))
    [item] = items(api, "node-a")
    assert item["checksum_sha256"] is None
    assert item["size_bytes"] is None
    assert item["magnet_links"] == []


def test_the_next_node_gets_the_first_copy_s_checksum_size_and_magnet(api):
    api.add(asset(1, size_mb=1.5))
    items(api, "node-a")
    api.completed(
        "asset-1", "node-a", checksum_sha256=SUM_A, size_bytes=1_572_000, magnet_link=MAGNET
    )
    [item] = items(api, "node-b")
    assert item["id"] == "asset-1"
    assert item["checksum_sha256"] == SUM_A
    assert item["size_bytes"] == 1_572_000
    assert item["magnet_links"] == [MAGNET]
    assert api.asset("asset-1")["size_mb"] == 1.5  # the catalog's size stays


def test_a_reported_size_in_bytes_fills_in_an_unknown_size(api):
    api.add(asset(1, size_mb=None))
    items(api, "node-a")
    api.completed("asset-1", "node-a", size_bytes=3 * 1024 * 1024)
    assert api.asset("asset-1")["size_mb"] == 3.0


def test_copies_that_disagree_settle_no_checksum(service):
    api = service(replication_target=3)
    api.add(asset(1))
    items(api, "node-a")
    items(api, "node-b")
    api.completed("asset-1", "node-a", checksum_sha256=SUM_A, magnet_link=MAGNET)
    api.completed("asset-1", "node-b", checksum_sha256=SUM_B, magnet_link=MAGNET_2)
    [item] = items(api, "node-c")
    assert item["checksum_sha256"] is None
    assert item["magnet_links"] == [MAGNET_2, MAGNET]  # newest first


@pytest.mark.parametrize("size_bytes", [-1, 1.5, "12", True])
def test_bad_size_bytes_is_refused(api, size_bytes):
    api.add(asset(1))
    items(api, "node-a")
    response = api.complete("asset-1", "node-a", size_bytes=size_bytes)
    assert response.status_code == 422
    assert "size_bytes" in response.text
