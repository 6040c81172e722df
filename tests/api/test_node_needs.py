"""What a rescue node needs from the server (issue 14): /allocate items carry the settled
checksum, the exact size and the copies' magnet links; a node lists its own open leases after a
restart; a node reports a copy it found damaged (/discard)."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from priorizer.allocation import lifecycle
from priorizer.maintenance.service import cap_limits
from priorizer.queue.policy import queue_policy
from tests.api.test_node_auth import ADMIN, SECRET, bearer, enroll
from tests.support.api import Api
from tests.support.factories import add_assets, allocate_in, asset, table_snapshot
from tests.support.lifecycle import MAGNET, SUM_A, SUM_B

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


def test_a_node_lists_its_open_leases_with_what_it_needs_to_fetch_them(api):
    api.add(asset(1, size_mb=1.0), asset(2, size_mb=2.0), asset(3, size_mb=600.0))
    given = items(api, "node-a", free_space_gb=0.5)
    api.completed("asset-1", "node-a", checksum_sha256=SUM_A)
    items(api, "node-b", free_space_gb=0.5)  # another node's leases are not listed

    response = api.client.get("/nodes/node-a/leases")
    assert response.status_code == 200, response.text
    listed = response.json()
    assert [item["id"] for item in listed] == ["asset-2"]
    [expected] = [item for item in given if item["id"] == "asset-2"]
    assert listed[0] == expected
    assert listed[0]["url"] == "https://data.example.org/files/2.zip"
    assert listed[0]["size_mb"] == 2.0


def test_listing_leases_of_an_unknown_node_is_404(api):
    response = api.client.get("/nodes/nobody/leases")
    assert response.status_code == 404
    assert "nobody" in response.json()["detail"]


def test_with_node_auth_a_node_lists_only_its_own_leases(start_service, clock):
    client, database, settings = start_service(
        admin_token=ADMIN, enrollment_secret=SECRET, node_auth=True
    )
    add_assets(database, settings, [asset(i, size_mb=1.0) for i in range(2)], clock())
    token_a = enroll(client, "node-a").json()["token"]
    enroll(client, "node-b")
    client.post("/allocate", json={"free_space_gb": 1}, headers=bearer(token_a))
    assert client.get("/nodes/node-a/leases").status_code == 401
    assert client.get("/nodes/node-b/leases", headers=bearer(token_a)).status_code == 403
    own = client.get("/nodes/node-a/leases", headers=bearer(token_a))
    assert own.status_code == 200 and len(own.json()) == 2


def test_a_damaged_copy_stops_counting_and_the_asset_returns_to_the_queue(service, clock):
    api = service(replication_target=1)
    api.add(asset(1))
    items(api, "node-a")
    api.completed("asset-1", "node-a", checksum_sha256=SUM_A)
    assert items(api, "node-b") == []  # at the target

    clock.advance(minutes=5)
    response = api.client.post(
        "/discard",
        json={"asset_id": "asset-1", "node_id": "node-a", "reason": "SHA-256 changed on disk"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["copies"] == 0
    detail = api.asset("asset-1")
    assert detail["copies"] == 0 and detail["holders"] == []
    [closed] = detail["history"]
    assert closed["status"] == "released"
    assert "SHA-256 changed on disk" in closed["note"]
    assert [item["id"] for item in items(api, "node-b")] == ["asset-1"]
    assert api.node("node-a")["failures"] == 0  # not the node's failure, nor the asset's
    assert detail["failed_nodes"] == 0


@pytest.mark.parametrize("holding", ["nothing", "a lease"])
def test_discarding_what_the_node_holds_no_copy_of_is_404_and_changes_nothing(api, holding):
    api.add(asset(1))
    items(api, "node-a")
    if holding == "nothing":
        api.completed("asset-1", "node-a")
        api.client.post(
            "/discard", json={"asset_id": "asset-1", "node_id": "node-a", "reason": "gone"}
        )
    before = table_snapshot(api.database)
    response = api.client.post(
        "/discard", json={"asset_id": "asset-1", "node_id": "node-a", "reason": "gone"}
    )
    assert response.status_code == 404
    assert "holds no copy" in response.json()["detail"]
    assert table_snapshot(api.database) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"asset_id": "asset-1", "node_id": "node-a"}, "reason"),
        ({"asset_id": "asset-1", "node_id": "node-a", "reason": ""}, "reason"),
        ({"asset_id": "asset-1", "node_id": "node-a", "reason": "x", "nodeId": "b"}, "nodeId"),
    ],
)
def test_bad_discard_names_the_field(api, body, field):
    api.add(asset(1))
    items(api, "node-a")
    api.completed("asset-1", "node-a")
    response = api.client.post("/discard", json=body)
    assert response.status_code == 422
    assert field in response.text


@pytest.mark.parametrize("size_bytes", [-1, 1.5, "12", True])
def test_bad_size_bytes_is_refused(api, size_bytes):
    api.add(asset(1))
    items(api, "node-a")
    response = api.complete("asset-1", "node-a", size_bytes=size_bytes)
    assert response.status_code == 422
    assert "size_bytes" in response.text


def test_magnet_links_cost_a_query_only_when_an_asset_handed_out_has_copies(
    database, settings, clock
):
    add_assets(database, settings, [asset(1), asset(2)], clock())
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(database.write_engine, "before_cursor_execute", record)
    try:
        with database.write() as session:
            first = allocate_in(session, settings, clock(), node_id="node-a", free_space_gb=100)
        assert len(first) == 2
        assert not [s for s in statements if "magnet_link" in s]  # first copies: no query
        with database.write() as session:
            lifecycle.complete(
                session,
                asset_id="asset-1",
                node_id="node-a",
                checksum_sha256=SUM_A,
                magnet_link=MAGNET,
                size_mb=None,
                queue=queue_policy(settings),
                limits=cap_limits(settings),
                size_tolerance=settings.size_tolerance,
                failure_threshold=settings.failure_threshold,
                now=clock(),
            )
        statements.clear()
        with database.write() as session:
            second = allocate_in(session, settings, clock(), node_id="node-b", free_space_gb=100)
        links = {lease.asset["id"]: lease.asset["magnet_links"] for lease in second}
        assert links == {"asset-1": [MAGNET], "asset-2": []}
        assert len([s for s in statements if "magnet_link" in s]) == 1
    finally:
        event.remove(database.write_engine, "before_cursor_execute", record)
