"""Read views: /assets, /assets/{id}, /nodes, /nodes/{id}, /allocations."""

from __future__ import annotations

from typing import Any

import pytest

from priorizer.queue.policy import queue_policy
from priorizer.seed import service as seed_service
from tests.support.factories import add_assets, allocate_in, asset, table_snapshot


def walk(client, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every item of a paged list, following `next_cursor`; (items, pages requested)."""
    items: list[dict[str, Any]] = []
    cursor = None
    for pages in range(1, 1000):
        query = {**params, **({"cursor": cursor} if cursor is not None else {})}
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
    raise AssertionError("paging does not end")


def import_copies(database, settings, now, records: list[dict[str, str]]) -> None:
    """Completed copies can only come from an import (the seed's allocations.json)."""
    with database.write() as session:
        seed_service.import_seed(
            session,
            assets=[],
            allocations=seed_service.parse_allocations(records, source="test"),
            queue=queue_policy(settings),
            lease_seconds=settings.allocation_expiry_seconds,
            now=now,
        )


# --- GET /assets ------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "limit"), [(23, 5), (20, 5), (7, 1), (7, 7), (7, 100)])
def test_assets_paging_visits_every_asset_once_in_id_order(
    client, database, settings, clock, count, limit
):
    add_assets(
        database,
        settings,
        [asset(f"{n:03d}", priority=n % 10 + 1) for n in reversed(range(count))],
        clock(),
    )

    items, pages = walk(client, "/assets", limit=limit)

    ids = [item["id"] for item in items]
    assert ids == [f"asset-{n:03d}" for n in range(count)]
    # A full last page needs one more (empty) request to learn that it was the last.
    assert pages == count // limit + 1
    assert all(len(page) <= limit for page in [ids[i : i + limit] for i in range(0, count, limit)])


def test_assets_paging_with_awkward_ids(client, database, settings, clock):
    awkward = ["Z", "a", "_x", "a-b", "a.b", "a/b", "é", "10", "9", "A B", "a%20b", "ü-ü"]
    add_assets(database, settings, [asset(0, id=i) for i in awkward], clock())

    items, _ = walk(client, "/assets", limit=3)

    ids = [item["id"] for item in items]
    assert sorted(ids) == sorted(awkward)
    assert len(ids) == len(set(ids))


def test_assets_page_fields(client, database, settings, clock):
    add_assets(database, settings, [asset(1, size_mb=None, priority=8, format="CSV")], clock())

    [item] = client.get("/assets").json()["items"]

    assert item["id"] == "asset-1"
    assert item["size_mb"] is None
    assert (item["priority"], item["base_priority"]) == (8, 8)
    assert item["format"] == "CSV"
    assert item["state"] == "active"
    assert (item["copies"], item["leases"], item["rank"]) == (0, 0, 8)


def test_assets_filter_by_priority_with_paging(client, database, settings, clock):
    add_assets(
        database, settings, [asset(f"{n:02d}", priority=n % 4 + 5) for n in range(30)], clock()
    )

    items, _ = walk(client, "/assets", priority=7, limit=3)

    assert [item["id"] for item in items] == [f"asset-{n:02d}" for n in range(30) if n % 4 == 2]
    assert {item["priority"] for item in items} == {7}
    assert client.get("/assets", params={"priority": 1}).json() == {
        "items": [],
        "next_cursor": None,
    }


def test_assets_filter_by_state(client, database, settings, clock):
    add_assets(database, settings, [asset(n) for n in range(4)], clock())
    withdrawn = client.post("/assets/withdraw", json={"asset_ids": ["asset-2"]})
    assert withdrawn.status_code == 200, withdrawn.text

    active, _ = walk(client, "/assets", state="active")
    gone, _ = walk(client, "/assets", state="withdrawn")
    unreachable, _ = walk(client, "/assets", state="unreachable")

    assert [a["id"] for a in active] == ["asset-0", "asset-1", "asset-3"]
    assert [a["id"] for a in gone] == ["asset-2"]
    assert unreachable == []


def test_assets_filters_combine_with_cursor(client, database, settings, clock):
    add_assets(database, settings, [asset(f"{n:02d}", priority=3) for n in range(10)], clock())

    body = client.get(
        "/assets", params={"priority": 3, "state": "active", "cursor": "asset-06"}
    ).json()

    assert [item["id"] for item in body["items"]] == ["asset-07", "asset-08", "asset-09"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"priority": 0},
        {"priority": 11},
        {"priority": "high"},
        {"state": "bogus"},
        {"state": "Active"},
        {"state": ""},
    ],
)
def test_assets_bad_query_is_422(client, database, params):
    response = client.get("/assets", params=params)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", next(iter(params))]


def test_assets_reads_change_nothing(client, database, settings, clock):
    add_assets(database, settings, [asset(n) for n in range(3)], clock())
    client.post("/allocate", json={"free_space_gb": 1, "node_id": "node-a"})
    before = table_snapshot(database)

    walk(client, "/assets", limit=2)
    client.get("/assets/asset-1")
    walk(client, "/nodes")
    client.get("/nodes/node-a")
    walk(client, "/allocations")

    assert table_snapshot(database) == before


# --- GET /assets/{id} -------------------------------------------------------------------------


def test_asset_detail_shows_open_leases_holders_and_history(client, database, settings, clock):
    add_assets(database, settings, [asset(1, priority=9), asset(2)], clock())
    import_copies(
        database,
        settings,
        clock(),
        [{"asset_id": "asset-1", "node_id": "node-c", "status": "completed"}],
    )
    # Target 2, one copy: a single lease may be open at a time.
    assert (
        client.post("/allocate", json={"free_space_gb": 1, "node_id": "node-b"}).status_code == 200
    )
    clock.advance(minutes=5)
    assert (
        client.post("/release", json={"asset_id": "asset-1", "node_id": "node-b"}).status_code
        == 200
    )
    clock.advance(minutes=5)
    client.post("/allocate", json={"free_space_gb": 1, "node_id": "node-a"})

    detail = client.get("/assets/asset-1").json()

    assert [h["node_id"] for h in detail["open_leases"]] == ["node-a"]
    assert detail["open_leases"][0]["status"] == "allocated"
    assert detail["open_leases"][0]["closed_at"] is None
    assert [(h["node_id"], h["status"]) for h in detail["holders"]] == [("node-c", "completed")]
    assert [(h["node_id"], h["status"]) for h in detail["history"]] == [("node-b", "released")]
    assert detail["history"][0]["closed_at"] == "2026-01-15T12:05:00Z"
    assert (detail["copies"], detail["leases"], detail["rank"]) == (1, 1, None)
    allocation_ids = {
        item["id"]
        for item in client.get("/allocations", params={"asset_id": "asset-1"}).json()["items"]
    }
    shown = detail["open_leases"] + detail["holders"] + detail["history"]
    assert {h["allocation_id"] for h in shown} == allocation_ids


def test_asset_detail_history_newest_first(client, database, settings, clock):
    add_assets(database, settings, [asset(1)], clock())
    for node in ("node-a", "node-b", "node-c"):
        client.post("/allocate", json={"free_space_gb": 1, "node_id": node})
        clock.advance(minutes=1)
        client.post("/release", json={"asset_id": "asset-1", "node_id": node})

    history = client.get("/assets/asset-1").json()["history"]

    assert [h["node_id"] for h in history] == ["node-c", "node-b", "node-a"]


def test_asset_detail_keeps_old_holders_after_long_history(client, database, settings, clock):
    from priorizer.allocation import service as allocation_service

    add_assets(database, settings, [asset(1)], clock())
    import_copies(
        database,
        settings,
        clock(),
        [{"asset_id": "asset-1", "node_id": "keeper", "status": "completed"}],
    )
    queue = queue_policy(settings)
    with database.write() as session:
        for _ in range(201):
            allocate_in(session, settings, clock(), node_id="churn", free_space_gb=1, max_assets=1)
            allocation_service.release_lease(
                session, asset_id="asset-1", node_id="churn", queue=queue, now=clock()
            )

    detail = client.get("/assets/asset-1").json()

    assert detail["copies"] == 1
    assert [h["node_id"] for h in detail["holders"]] == ["keeper"]


def test_asset_detail_unknown_is_404(client, database):
    response = client.get("/assets/no-such-asset")

    assert response.status_code == 404
    assert "no-such-asset" in response.json()["detail"]


# --- GET /nodes -------------------------------------------------------------------------------


def test_nodes_show_open_leases_reserved_space_and_copies(client, database, settings, clock):
    add_assets(
        database,
        settings,
        [asset(1, size_mb=100, priority=9), asset(2, size_mb=None, priority=8), asset(3)],
        clock(),
    )
    import_copies(
        database,
        settings,
        clock(),
        [
            {"asset_id": "asset-3", "node_id": "node-c", "status": "completed"},
            {"asset_id": "asset-1", "node_id": "node-c", "status": "completed"},
        ],
    )
    client.post("/allocate", json={"free_space_gb": 1.1, "node_id": "node-a"})
    client.post("/allocate", json={"free_space_gb": 0.1, "node_id": "node-b"})
    client.post("/release", json={"asset_id": "asset-3", "node_id": "node-b"})

    nodes = {item["id"]: item for item in client.get("/nodes").json()["items"]}

    # node-a: asset-1 (100 MiB) and asset-2 (unknown: 1024 MiB) fit 1126.4 MiB; asset-3 not.
    assert {k: nodes["node-a"][k] for k in ("open_leases", "reserved_mb", "copies")} == {
        "open_leases": 2,
        "reserved_mb": 1124,
        "copies": 0,
    }
    assert nodes["node-a"]["free_space_mb"] == pytest.approx(1.1 * 1024)
    assert (nodes["node-b"]["open_leases"], nodes["node-b"]["reserved_mb"]) == (0, 0)
    assert {k: nodes["node-c"][k] for k in ("open_leases", "reserved_mb", "copies")} == {
        "open_leases": 0,
        "reserved_mb": 0,
        "copies": 2,
    }
    # Imported nodes never reported their space.
    assert nodes["node-c"]["free_space_mb"] is None
    detail = client.get("/nodes/node-a").json()
    assert {k: detail[k] for k in nodes["node-a"]} == nodes["node-a"]
    assert (detail["lease_cap"], detail["completions"], detail["lost"]) == (200, 0, False)


def test_nodes_paging(client, database, settings, clock):
    add_assets(database, settings, [asset(1)], clock())
    for n in range(7):
        client.post("/allocate", json={"free_space_gb": 0.01, "node_id": f"node-{n}"})

    items, pages = walk(client, "/nodes", limit=3)

    assert [item["id"] for item in items] == [f"node-{n}" for n in range(7)]
    assert pages == 3


def test_node_seen_times(client, database, settings, clock):
    client.post("/allocate", json={"free_space_gb": 1, "node_id": "node-a"})
    clock.advance(hours=1)
    client.post("/allocate", json={"free_space_gb": 2, "node_id": "node-a"})

    node = client.get("/nodes/node-a").json()

    assert node["first_seen_at"] == "2026-01-15T12:00:00Z"
    assert node["last_seen_at"] == "2026-01-15T13:00:00Z"
    assert node["free_space_mb"] == 2048


def test_node_unknown_is_404(client, database):
    response = client.get("/nodes/node-ghost")

    assert response.status_code == 404
    assert "node-ghost" in response.json()["detail"]


# --- GET /allocations -------------------------------------------------------------------------


@pytest.fixture
def history(client, database, settings, clock):
    """node-a: 3 open leases; node-b: 2 leases, one released; node-c: 1 imported copy."""
    add_assets(database, settings, [asset(n, priority=10 - n) for n in range(1, 5)], clock())
    import_copies(
        database,
        settings,
        clock(),
        [{"asset_id": "asset-4", "node_id": "node-c", "status": "completed"}],
    )
    client.post("/allocate", json={"free_space_gb": 300 / 1024, "node_id": "node-a"})
    client.post("/allocate", json={"free_space_gb": 200 / 1024, "node_id": "node-b"})
    client.post("/release", json={"asset_id": "asset-1", "node_id": "node-b"})


def test_allocations_filters(client, history):
    def query(**params: Any) -> list[tuple[str, str, str]]:
        items, _ = walk(client, "/allocations", **params)
        return [(i["asset_id"], i["node_id"], i["status"]) for i in items]

    everything = query()
    assert len(everything) == 6
    assert query(node_id="node-a") == [
        ("asset-1", "node-a", "allocated"),
        ("asset-2", "node-a", "allocated"),
        ("asset-3", "node-a", "allocated"),
    ]
    assert query(asset_id="asset-1") == [
        ("asset-1", "node-a", "allocated"),
        ("asset-1", "node-b", "released"),
    ]
    assert query(status="released") == [("asset-1", "node-b", "released")]
    assert query(status="completed") == [("asset-4", "node-c", "completed")]
    assert query(node_id="node-b", status="allocated") == [("asset-2", "node-b", "allocated")]
    assert query(node_id="node-a", asset_id="asset-4") == []
    assert query(status="expired") == []


def test_allocations_paging_by_cursor(client, history):
    everything = client.get("/allocations", params={"limit": 1000}).json()
    assert everything["next_cursor"] is None

    items, pages = walk(client, "/allocations", limit=4)

    ids = [item["id"] for item in items]
    assert ids == [item["id"] for item in everything["items"]]
    assert ids == sorted(ids)
    assert len(set(ids)) == 6
    assert pages == 2
    after = client.get("/allocations", params={"cursor": ids[2]}).json()["items"]
    assert [item["id"] for item in after] == ids[3:]


def test_allocations_fields(client, history):
    [lease] = client.get(
        "/allocations", params={"node_id": "node-a", "asset_id": "asset-1"}
    ).json()["items"]

    assert lease["status"] == "allocated"
    assert lease["reserved_mb"] == 100
    assert lease["allocated_at"] == "2026-01-15T12:00:00Z"
    assert lease["renewed_at"] == "2026-01-15T12:00:00Z"
    assert lease["expires_at"] == "2026-01-16T12:00:00Z"
    assert lease["closed_at"] is None


@pytest.mark.parametrize(
    "params",
    [{"status": "bogus"}, {"cursor": -1}, {"cursor": "abc"}, {"limit": 0}, {"node_id": "a b"}],
)
def test_allocations_bad_query_is_422(client, database, params):
    response = client.get("/allocations", params=params)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", next(iter(params))]


def test_an_asset_whose_id_holds_a_slash_can_be_read(client, database, settings, clock):
    add_assets(database, settings, [asset("dir/file-1")], clock())

    response = client.get("/assets/asset-dir/file-1")

    assert response.status_code == 200
    assert response.json()["id"] == "asset-dir/file-1"


# --- Bad query parameters, on every endpoint that takes some ------------------------------------

# Each list endpoint, and a bad value for each query parameter it takes.
BAD_QUERIES = {
    "/assets": {
        "cursor": "a\x01b",
        "limit": "0",
        "priority": "11",
        "state": "retired",
        "copies": "-1",
    },
    "/allocations": {
        "node_id": "a b",
        "asset_id": "\x7f",
        "status": "bogus",
        "cursor": "-1",
        "limit": "1001",
    },
    "/nodes": {"cursor": "<script>", "limit": "many"},
    "/ranking": {"limit": "0"},
    "/harvest/runs": {"limit": "1e3"},
    "/maintenance/runs": {"limit": "-5"},
}


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [(path, name, value) for path, bad in BAD_QUERIES.items() for name, value in bad.items()],
)
def test_every_bad_query_value_is_422_naming_the_parameter(client, database, path, name, value):
    before = table_snapshot(database)

    response = client.get(path, params={name: value})

    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["query", name]]
    assert table_snapshot(database) == before


@pytest.mark.parametrize(
    ("path", "name", "allowed"),
    [
        ("/assets", "state", ["active", "unreachable", "withdrawn", "removed_upstream"]),
        ("/allocations", "status", ["allocated", "completed", "released", "expired", "failed"]),
    ],
)
def test_a_bad_state_filter_names_the_allowed_values(client, database, path, name, allowed):
    response = client.get(path, params={name: "bogus"})

    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", name]
    assert all(f"'{value}'" in error["msg"] for value in allowed), error


@pytest.mark.parametrize(
    ("path", "typo"),
    [
        ("/assets", "status"),  # /allocations' name for the filter /assets calls state
        ("/assets", "prio"),
        ("/allocations", "state"),
        ("/allocations", "node"),
        ("/nodes", "after"),
        ("/ranking", "top"),
        ("/harvest/runs", "Limit"),
        ("/maintenance/runs", "count"),
    ],
)
def test_an_unknown_query_parameter_is_422_naming_it_and_those_taken(client, database, path, typo):
    response = client.get(path, params={typo: "active"})

    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", typo]
    taken = error["msg"].split("takes: ")[1].split(", ")
    assert set(taken) == set(BAD_QUERIES[path])


def test_a_misspelt_filter_never_answers_the_whole_list(client, database, settings, clock):
    add_assets(database, settings, [asset(n) for n in range(3)], clock())
    assert client.post("/assets/withdraw", json={"asset_ids": ["asset-1"]}).status_code == 200

    assert client.get("/assets", params={"stat": "withdrawn"}).status_code == 422
    assert [
        a["id"] for a in client.get("/assets", params={"state": "withdrawn"}).json()["items"]
    ] == ["asset-1"]


@pytest.mark.parametrize("path", ["/status", "/health", "/metrics", "/nodes/node-a", "/"])
def test_endpoints_that_take_no_query_parameters_ignore_the_query_string(client, database, path):
    client.post("/allocate", json={"free_space_gb": 1, "node_id": "node-a"})

    assert client.get(path, params={"_": "1700000000"}).status_code == 200
