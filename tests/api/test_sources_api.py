"""GET/POST/DELETE /sources (admin), and the sources in /status, /metrics and the dashboard."""

from __future__ import annotations

from priorizer.sources import service
from tests.support.factories import table_snapshot

TOKEN = "a-long-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def test_watching_a_source_over_http(start_service, clock):
    client, _database, _settings = start_service(admin_token=TOKEN)
    body = {"url": "https://catalog.example.gov", "organization": "noaa-gov", "every": "6h"}

    assert client.post("/sources", json=body).status_code == 401
    assert client.get("/sources").status_code == 401
    created = client.post("/sources", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    source = created.json()
    assert source["kind"] == "ckan" and source["every_seconds"] == 21_600
    assert source["full_every_seconds"] == 86_400 and source["next_run_at"] is not None
    again = client.post("/sources", json=body, headers=ADMIN)
    assert again.status_code == 409 and "watched already" in again.json()["detail"]
    dcat = client.post(
        "/sources",
        json={"url": "https://agency.example.gov/data.json", "every": 3600},
        headers=ADMIN,
    )
    assert dcat.status_code == 201 and dcat.json()["kind"] == "dcat"

    listed = client.get("/sources", headers=ADMIN).json()
    assert [s["id"] for s in listed] == [source["id"], dcat.json()["id"]]
    status = client.get("/status").json()
    assert [s["url"] for s in status["sources"]] == [body["url"], dcat.json()["url"]]
    metrics = client.get("/metrics").text
    assert f'priorizer_source_datasets{{source="{source["key"]}"}} 0.0' in metrics
    assert "priorizer_assets_removed_without_copy 0.0" in metrics
    panel = client.get("/dashboard/panel").text
    assert 'id="sources"' in panel and "agency.example.gov/data.json" in panel

    gone = client.delete(f"/sources/{source['id']}", headers=ADMIN)
    assert gone.status_code == 200 and gone.json()["key"] == source["key"]
    assert client.delete(f"/sources/{source['id']}", headers=ADMIN).status_code == 404
    by_url = client.delete("/sources/https://agency.example.gov/data.json", headers=ADMIN)
    assert by_url.status_code == 200
    assert client.get("/sources", headers=ADMIN).json() == []


def test_bad_sources_are_refused_and_change_nothing(start_service):
    client, database, _settings = start_service()
    before = table_snapshot(database)
    for body in (
        {"url": "https://x.example.gov", "every": "sometimes"},
        {"url": "https://x.example.gov", "every": 0},
        {"url": "https://x.example.gov/data.json", "organization": "noaa-gov"},
        {"url": "ftp://x.example.gov"},
        {"url": "https://x.example.gov", "kind": "rss"},
        {"url": "https://x.example.gov", "extra": 1},
    ):
        response = client.post("/sources", json=body)
        assert response.status_code == 422, (body, response.text)
    assert table_snapshot(database) == before
    with database.read() as session:
        assert service.list_sources(session) == []
