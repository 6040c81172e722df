"""The seed README's request examples give its documented responses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.factories import add_assets, asset


def test_allocate_example_returns_seed_fields(client, database, settings, clock):
    add_assets(database, settings, [asset(1, size_mb=500, priority=8)], clock())

    response = client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-123"})

    assert response.status_code == 200
    [item] = response.json()
    assert {k: item[k] for k in ("id", "url", "size_mb", "priority", "name")} == {
        "id": "asset-1",
        "url": "https://data.example.org/files/1.zip",
        "size_mb": 500,
        "priority": 8,
        "name": "file-1.zip",
    }
    assert item["node_id"] == "node-123"
    assert response.headers["x-node-id"] == "node-123"


def test_allocate_without_node_id_generates_one(client, database, settings, clock):
    add_assets(database, settings, [asset(1)], clock())

    response = client.post("/allocate", json={"free_space_gb": 10})

    [item] = response.json()
    assert item["node_id"] == response.headers["x-node-id"]
    assert item["node_id"].startswith("node-")
    leases = client.get("/allocations", params={"node_id": item["node_id"]}).json()["items"]
    assert [lease["asset_id"] for lease in leases] == ["asset-1"]


def test_allocate_returns_empty_list_when_nothing_fits(client, database, settings, clock):
    add_assets(database, settings, [asset(1, size_mb=50_000)], clock())

    response = client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-123"})

    assert response.status_code == 200
    assert response.json() == []


def test_release_example(client, database, settings, clock):
    add_assets(database, settings, [asset(1)], clock())
    client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-123"})

    response = client.post("/release", json={"asset_id": "asset-1", "node_id": "node-123"})

    assert response.status_code == 200
    assert response.json() == {"status": "success", "message": "Asset released successfully"}


def test_release_without_lease_is_404(client, database, settings, clock):
    add_assets(database, settings, [asset(1)], clock())
    client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-123"})

    response = client.post("/release", json={"asset_id": "asset-1", "node_id": "node-999"})

    assert response.status_code == 404
    assert "node-999" in response.json()["detail"]


def test_update_ckan_example(client, database, settings, clock):
    add_assets(database, settings, [asset(1, priority=5)], clock())

    response = client.post(
        "/update-ckan", json={"updates": [{"asset_id": "asset-1", "new_priority": 9}]}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["updated_items"] == 1
    detail = client.get("/assets/asset-1").json()
    assert (detail["base_priority"], detail["priority"]) == (9, 9)


def test_status_example_fields(client, database, settings, clock):
    add_assets(database, settings, [asset(1, priority=8), asset(2, priority=3)], clock())
    client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-123"})

    body = client.get("/status").json()

    assert body["ckan_datasets"] == 2
    assert body["active_allocations"] == 2
    assert body["total_priority_score"] == 11
    assert body["system_health"] == "healthy"
    assert "next_auto_update" in body


def test_status_reports_next_auto_update_when_scheduler_runs(db_url, tmp_path, clock):
    from fastapi.testclient import TestClient

    from priorizer.maintenance.service import slot_of, slot_start
    from priorizer.startup import prepare
    from priorizer.web.app import create_app
    from tests.conftest import make_settings

    settings = make_settings(db_url, tmp_path, run_scheduler=True, auto_update_interval_minutes=5)
    prepare(settings, now=clock())
    started = datetime.now(UTC)
    with TestClient(create_app(settings, clock=clock)) as client:
        body = client.get("/status").json()
        assert client.get("/health").status_code == 200
    # The scheduler keeps real time, whatever clock the leases use.
    # Every process fires at the same slots: whole intervals from one origin.
    next_run = datetime.fromisoformat(body["next_auto_update"])
    assert started < next_run <= datetime.now(UTC) + timedelta(minutes=5)
    assert next_run == slot_start(slot_of(next_run, 300), 300)
