"""POST /harvest, GET /harvest/runs, /status's `harvest` and GET /assets/{id}/priority, in
process (TestClient) against a real CKAN-compatible HTTP server
(tests/support/ckan_portal.py), on both databases."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from priorizer.db import Database
from priorizer.harvest.service import LOCK_NAME, Source, lock_key
from tests.conftest import FakeClock
from tests.support.ckan_data import hostile_catalog, package, resource
from tests.support.ckan_portal import CkanPortal

WAIT = 30.0  # seconds: the bound of every wait for a background harvest
MB = 1024 * 1024


@pytest.fixture
def portal() -> Iterator[CkanPortal]:
    with CkanPortal(hostile_catalog(60, seed=3)) as running:
        yield running


def latest_run(client: TestClient) -> dict[str, Any] | None:
    response = client.get("/status")
    assert response.status_code == 200, response.text
    return response.json()["harvest"]


def harvest(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    """POST /harvest, then poll /status (bounded) until that run has ended; the run."""
    before = latest_run(client)
    response = client.post("/harvest", json=body)
    assert response.status_code == 202, response.text
    return wait_for_run(client, after=before["id"] if before else None)


def wait_for_run(client: TestClient, *, after: int | None) -> dict[str, Any]:
    """The first run newer than `after` once it is no longer running (polling /status)."""
    deadline = time.monotonic() + WAIT
    run = latest_run(client)
    while run is None or run["id"] == after or run["state"] == "running":
        assert time.monotonic() < deadline, f"the harvest has not ended after {WAIT}s: {run}"
        time.sleep(0.05)
        run = latest_run(client)
    # The harvest's thread logs its end after recording it: let it finish before the test does.
    for worker in list(client.app.state.harvests.values()):
        worker.join(WAIT)
        assert not worker.is_alive()
    return run


# --- POST /harvest, GET /harvest/runs, /status ------------------------------------------------


def test_a_harvest_started_by_post_runs_in_the_background_and_shows_in_status(
    client: TestClient, portal: CkanPortal
) -> None:
    assert latest_run(client) is None
    assert client.get("/harvest/runs").json() == []

    response = client.post("/harvest", json={"url": portal.base_url})
    assert response.status_code == 202, response.text
    assert response.json() == {
        "status": "started",
        "source": f"{portal.base_url}/api/3/action",
        "run_id": 1,
    }
    run = wait_for_run(client, after=None)
    assert run["id"] == 1

    assert run["state"] == "ok" and run["error"] is None, run
    assert run["datasets"] == run["expected"] == len(portal.datasets)
    assert run["source"] == f"{portal.base_url}/api/3/action"
    assert run["finished_at"] is not None and run["removed_upstream"] == 0
    status = client.get("/status").json()
    assert status["datasets"] == len(portal.datasets)
    assert status["assets"] == run["assets_created"] > 0

    runs = client.get("/harvest/runs")
    assert runs.status_code == 200, runs.text
    assert runs.json() == [run]
    assert portal.searches(), "the portal was asked"


def test_a_second_post_while_the_source_is_harvested_is_refused(
    client: TestClient, portal: CkanPortal
) -> None:
    asked, release = threading.Event(), threading.Event()

    def hold_the_first_request(_params: dict) -> None:
        asked.set()
        assert release.wait(WAIT), "the test never let the harvest go on"

    portal.on_search = hold_the_first_request
    first = client.post("/harvest", json={"url": portal.base_url})
    assert first.status_code == 202, first.text
    try:
        assert asked.wait(WAIT), "the harvest never asked the portal"
        running = latest_run(client)
        assert running is not None and running["state"] == "running", running

        again = client.post("/harvest", json={"url": portal.base_url})
        assert again.status_code == 409, again.text
        assert "running already" in again.json()["detail"]
        # The same portal by its API URL is the same source.
        by_api = client.post("/harvest", json={"url": f"{portal.base_url}/api/3/action/"})
        assert by_api.status_code == 409, by_api.text
    finally:
        portal.on_search = None
        release.set()
    run = wait_for_run(client, after=None)
    assert run["state"] == "ok" and run["datasets"] == len(portal.datasets), run
    assert [r["id"] for r in client.get("/harvest/runs").json()] == [run["id"]]

    # Once it has ended, the source can be harvested again.
    second = harvest(client, {"url": portal.base_url})
    assert second["id"] != run["id"] and second["state"] == "ok", second
    assert second["assets_created"] == 0


def test_two_sources_posted_at_once_are_harvested_side_by_side(
    client: TestClient, portal: CkanPortal
) -> None:
    asked, release = threading.Event(), threading.Event()

    def hold(_params: dict) -> None:
        asked.set()
        assert release.wait(WAIT), "the test never let the harvest go on"

    with CkanPortal(hostile_catalog(25, seed=11)) as other:
        portal.on_search = hold
        try:
            first = client.post("/harvest", json={"url": portal.base_url})
            assert first.status_code == 202, first.text
            assert asked.wait(WAIT), "the first harvest never asked its portal"
            # The first holds its source; the second, of another source, starts all the same.
            second = client.post("/harvest", json={"url": other.base_url})
            assert second.status_code == 202, second.text
            assert second.json()["run_id"] != first.json()["run_id"]
            ended = wait_for_source(client, second.json()["run_id"])
            assert ended["state"] == "ok" and ended["error"] is None, ended
            assert ended["datasets"] == len(other.datasets)
        finally:
            portal.on_search = None
            release.set()
        wait_for_source(client, first.json()["run_id"])
        wait_for_run(client, after=None)  # and every harvest thread has ended
        runs = {run["id"]: run for run in client.get("/harvest/runs").json()}
    assert sorted(runs) == sorted([first.json()["run_id"], second.json()["run_id"]])
    assert {run["state"] for run in runs.values()} == {"ok"}, runs
    assert {run["source"] for run in runs.values()} == {
        f"{portal.base_url}/api/3/action",
        f"{other.base_url}/api/3/action",
    }
    status = client.get("/status").json()
    assert status["datasets"] == len(set(portal.datasets) | set(other.datasets))


def wait_for_source(client: TestClient, run_id: int) -> dict[str, Any]:
    """Run `run_id` from /harvest/runs once it is no longer running (bounded)."""
    deadline = time.monotonic() + WAIT
    while True:
        runs = {run["id"]: run for run in client.get("/harvest/runs").json()}
        if run_id in runs and runs[run_id]["state"] != "running":
            return runs[run_id]
        assert time.monotonic() < deadline, f"run {run_id} has not ended after {WAIT}s: {runs}"
        time.sleep(0.05)


def test_a_source_another_process_harvests_is_refused_up_front(
    client: TestClient, portal: CkanPortal, database: Database
) -> None:
    source = Source(portal.base_url)
    # Another process (here another connection of the test's own) holds the source's lock.
    with database.exclusive(LOCK_NAME, key=lock_key(source.key)) as held:
        assert held
        refused = client.post("/harvest", json={"url": portal.base_url})
        assert refused.status_code == 409, refused.text
        assert refused.json()["detail"] == f"a harvest of {source.key} is running already"
    for worker in client.app.state.harvests.values():
        worker.join(WAIT)
    assert latest_run(client) is None and client.get("/harvest/runs").json() == []
    assert portal.searches() == []
    # Once it is free, the source is harvested.
    run = harvest(client, {"url": portal.base_url})
    assert run["state"] == "ok" and run["datasets"] == len(portal.datasets), run


def test_a_harvest_that_fails_in_the_background_is_recorded_with_its_error(
    client: TestClient, portal: CkanPortal
) -> None:
    portal.fail_next(1, status=403)  # a refusal: not tried again

    response = client.post("/harvest", json={"url": portal.base_url})
    assert response.status_code == 202, response.text
    run = wait_for_run(client, after=None)

    assert run["id"] == response.json()["run_id"]
    assert run["state"] == "interrupted" and run["finished_at"] is None, run
    assert "HTTP 403" in run["error"], run
    assert client.get("/harvest/runs").json() == [run]
    assert client.get("/status").json()["harvest"] == run


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": "ftp://ftp.example.org/pub"}, "url"),
        ({"url": "PORTAL", "extra": True}, "extra"),
        ({"url": "PORTAL", "since": "2025-01-01T00:00:00"}, "since"),  # no timezone
        ({"url": "PORTAL", "organization": ""}, "organization"),
        ({"url": "PORTAL", "incremental": "sometimes"}, "incremental"),
    ],
    ids=["no url", "ftp url", "extra field", "naive since", "empty organization", "bad flag"],
)
def test_an_invalid_harvest_request_is_refused_and_starts_nothing(
    client: TestClient, portal: CkanPortal, body: dict[str, Any], field: str
) -> None:
    if body.get("url") == "PORTAL":
        body = {**body, "url": portal.base_url}
    response = client.post("/harvest", json=body)
    assert response.status_code == 422, response.text
    locations = [error["loc"] for error in response.json()["detail"]]
    assert ["body", field] in locations, response.json()
    assert client.app.state.harvests == {}
    assert latest_run(client) is None
    assert client.get("/harvest/runs").json() == []
    assert portal.searches() == []


# --- GET /assets/{id}/priority ------------------------------------------------------------------

NOW_IN_TESTS = FakeClock().now  # 2026-01-15 12:00 UTC: what the age factor counts from


def scored_packages() -> list[dict]:
    """Datasets whose scores under the default policy are worked out by hand below."""
    return [
        package(
            "ocean",  # noaa-gov +2; climate, ocean, temperature: 3 (the cap); 6 years: +1 (cap)
            title="Ocean temperature profiles",
            organization="noaa-gov",
            tags=["climate"],
            views=1000,  # +1.5: 0.5 for each tenfold
            modified="2019-06-01T00:00:00",
            resources=[
                resource("https://data.example.org/ocean/small.csv", size=10 * MB),  # +0.5
                resource("https://data.example.org/ocean/huge.nc", size=20 * 1024 * MB),  # -0.5
                resource("https://data.example.org/ocean/unknown.zip"),  # unknown size: 0
            ],
        ),
        package(
            "snow",  # no organization; snow +0.5; modified last month: no age points
            title="Snow depth",
            organization=None,
            modified="2025-12-01T00:00:00",
            resources=[
                resource("https://data.example.org/snow/unknown.csv"),  # 4.5: halves up, 5
                resource("https://data.example.org/snow/huge.nc", size=20 * 1024 * MB),  # 4
            ],
        ),
        package(
            "forest",  # wsl +0.5; the tag "Glacier" is the keyword glacier, +1; no views
            title="Forest inventory",
            organization="wsl",
            tags=["Glacier"],
            views=0,
            modified="2025-10-01T00:00:00",
            resources=[resource("https://data.example.org/forest/big.zip", size=50 * 1024 * MB)],
        ),
        package(
            "crops",  # an organization the policy does not name; no keyword: the base alone
            title="Crop yields",
            organization="some-university",
            modified="2025-11-01T00:00:00",
            resources=[resource("https://data.example.org/crops/a.csv", size=300 * MB)],
        ),
    ]


# url -> (factor: points, in the policy's order), raw score, priority
EXPECTED = {
    "https://data.example.org/ocean/small.csv": (
        {"organization": 2.0, "keywords": 3.0, "popularity": 1.5, "age": 1.0, "size": 0.5},
        12.0,
        10,
    ),
    "https://data.example.org/ocean/huge.nc": (
        {"organization": 2.0, "keywords": 3.0, "popularity": 1.5, "age": 1.0, "size": -0.5},
        11.0,
        10,
    ),
    "https://data.example.org/ocean/unknown.zip": (
        {"organization": 2.0, "keywords": 3.0, "popularity": 1.5, "age": 1.0},
        11.5,
        10,
    ),
    "https://data.example.org/snow/unknown.csv": ({"keywords": 0.5}, 4.5, 5),
    "https://data.example.org/snow/huge.nc": ({"keywords": 0.5, "size": -0.5}, 4.0, 4),
    "https://data.example.org/forest/big.zip": (
        {"organization": 0.5, "keywords": 1.0, "size": -0.5},
        5.0,
        5,
    ),
    "https://data.example.org/crops/a.csv": ({}, 4.0, 4),  # 300 MB: the 0-point band
}


@pytest.fixture
def scored_portal() -> Iterator[CkanPortal]:
    with CkanPortal([*scored_packages(), *hostile_catalog(40, seed=9)]) as running:
        yield running


def all_assets(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/assets", params={"limit": 1000})
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return response.json()["items"]


def explain(client: TestClient, asset_id: str) -> dict[str, Any]:
    response = client.get(f"/assets/{asset_id}/priority")
    assert response.status_code == 200, response.text
    return response.json()


def halves_up(raw: float) -> int:
    return min(10, max(1, math.floor(raw + 0.5)))


def test_priority_explanations_add_up_and_match_the_harvested_priorities(
    client: TestClient, scored_portal: CkanPortal
) -> None:
    run = harvest(client, {"url": scored_portal.base_url})
    assert run["state"] == "ok", run
    assets = all_assets(client)
    assert len(assets) == run["assets_created"]
    by_url = {a["url"]: a for a in assets}
    assert set(EXPECTED) <= set(by_url)

    for item in assets:  # every asset, the hostile ones too
        why = explain(client, item["id"])
        assert why["asset_id"] == item["id"]
        assert why["policy"] == "default" and why["base"] == 4.0
        assert why["base"] + sum(f["points"] for f in why["factors"]) == pytest.approx(
            why["raw_score"]
        ), why
        assert why["policy_priority"] == halves_up(why["raw_score"]), why
        assert why["base_priority"] == why["policy_priority"] == item["base_priority"], why
        assert why["manual_priority"] is None and why["decided_by"] == "policy"
        assert all(f["points"] != 0 for f in why["factors"]), why  # no empty factor shown

    for url, (points, raw, priority) in EXPECTED.items():
        why = explain(client, by_url[url]["id"])
        got = {f["factor"]: f["points"] for f in why["factors"]}
        assert got == pytest.approx(points), (url, why)
        assert list(got) == list(points), (url, why)  # in the policy's order
        assert why["raw_score"] == pytest.approx(raw), (url, why)
        assert why["policy_priority"] == why["base_priority"] == priority, (url, why)
        assert why["dataset_id"] == url.split("/")[3]

    def details(url: str) -> dict[str, str]:
        return {f["factor"]: f["detail"] for f in explain(client, by_url[url]["id"])["factors"]}

    ocean = details("https://data.example.org/ocean/small.csv")
    assert ocean["organization"] == "noaa-gov"
    assert set(ocean["keywords"].split(", ")) == {"climate", "ocean", "temperature"}
    assert "1000 views" in ocean["popularity"]
    assert "6 years" in ocean["age"]
    assert "10 MB" in ocean["size"]
    forest = details("https://data.example.org/forest/big.zip")
    assert (forest["organization"], forest["keywords"]) == ("wsl", "glacier")  # the tag Glacier


def test_a_manual_priority_wins_and_outlives_the_next_harvest(
    client: TestClient, scored_portal: CkanPortal, clock: FakeClock
) -> None:
    harvest(client, {"url": scored_portal.base_url})
    by_url = {a["url"]: a for a in all_assets(client)}
    chosen = by_url["https://data.example.org/ocean/small.csv"]["id"]
    sibling = by_url["https://data.example.org/ocean/huge.nc"]["id"]
    assert explain(client, chosen)["base_priority"] == 10

    update = client.post(
        "/update-ckan", json={"updates": [{"asset_id": chosen, "new_priority": 2}]}
    )
    assert update.status_code == 200, update.text
    assert update.json()["updated_items"] == 1
    why = explain(client, chosen)
    assert why["decided_by"] == "manual" and why["manual_priority"] == 2, why
    assert why["base_priority"] == 2 and why["policy_priority"] == 10, why

    # The portal changes the dataset (no keyword, no views any more) and it is harvested again.
    clock.advance(days=1)
    with scored_portal.lock:
        ocean = scored_portal.datasets["ocean"]
        ocean.update(title="Profiles", tags=[], metadata_modified="2026-01-16T00:00:00")
        ocean.pop("tracking_summary")
    run = harvest(client, {"url": scored_portal.base_url})
    assert run["state"] == "ok" and run["assets_created"] == 0, run

    why = explain(client, chosen)
    assert why["decided_by"] == "manual" and why["manual_priority"] == 2, why
    assert why["base_priority"] == 2, why
    # noaa-gov +2, "ocean" still in the dataset's name +1, the small file +0.5: 7.5, so 8.
    points = {f["factor"]: f["points"] for f in why["factors"]}
    assert points == {"organization": 2.0, "keywords": 1.0, "size": 0.5}, why
    assert why["raw_score"] == pytest.approx(7.5) and why["policy_priority"] == 8, why
    # Its sibling, which nobody chose a priority for, follows the policy: 6.5, so 7.
    other = explain(client, sibling)
    assert other["decided_by"] == "policy" and other["manual_priority"] is None, other
    assert other["raw_score"] == pytest.approx(6.5), other
    assert other["base_priority"] == other["policy_priority"] == 7, other


def test_the_priority_of_an_unknown_asset_is_not_found(client: TestClient) -> None:
    response = client.get("/assets/no-such-asset/priority")
    assert response.status_code == 404, response.text
    assert "no-such-asset" in response.json()["detail"]


def test_starting_a_harvest_is_an_admin_action(start_service, portal: CkanPortal) -> None:
    token = "an-admin-token-of-some-length"
    client, _database, _settings = start_service(admin_token=token)

    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        refused = client.post("/harvest", json={"url": portal.base_url}, headers=headers)
        assert refused.status_code == 401, refused.text
    assert client.app.state.harvests == {} and portal.searches() == []
    assert latest_run(client) is None

    accepted = client.post(
        "/harvest", json={"url": portal.base_url}, headers={"Authorization": f"Bearer {token}"}
    )
    assert accepted.status_code == 202, accepted.text
    run = wait_for_run(client, after=None)
    assert run["state"] == "ok" and run["datasets"] == len(portal.datasets), run
