"""Datasets removed upstream whose assets have no copy: they come first, they are listed
(`GET /assets?state=removed_upstream&copies=0`, the dashboard), and a webhook hears of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.test_harvest_api import harvest
from tests.support.ckan_data import package, resource
from tests.support.ckan_portal import CkanPortal
from tests.support.receiver import Receiver

# Five datasets alike in everything the scoring policy looks at: one former priority.
PACKAGES = [
    package(
        f"ds-{n}",
        title="Station records",
        tags=["weather"],
        modified="2024-01-01T00:00:00.000000",
        resources=[resource(url=f"https://origin.example/{n}.csv", size=10 * 1024 * 1024)],
    )
    for n in range(5)
]


@pytest.fixture
def portal() -> Iterator[CkanPortal]:
    with CkanPortal(PACKAGES) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def assets_by_dataset(client) -> dict[str, dict]:
    items = client.get("/assets", params={"limit": 1000}).json()["items"]
    return {item["dataset_id"]: item for item in items}


def test_removed_datasets_rise_are_listed_and_alerted(start_service, clock, portal, receiver):
    receiver.fail_next = 1  # the first try of the first notice fails: it is retried
    client, _database, _settings = start_service(
        removal_webhook_url=receiver.url, replication_target=1
    )
    harvest(client, {"url": portal.base_url})
    before = assets_by_dataset(client)
    assert len({a["priority"] for a in before.values()}) == 1  # one former priority
    # ds-1's asset gets a copy; then ds-0 and ds-1 vanish upstream.
    lease = client.post("/allocate", json={"node_id": "n1", "free_space_gb": 0.011}).json()
    copied = lease[0]["id"]
    done = client.post("/complete", json={"asset_id": copied, "node_id": "n1"})
    assert done.status_code == 200, done.text
    copied_dataset = next(d for d, a in before.items() if a["id"] == copied)
    gone = sorted({"ds-0", copied_dataset} if copied_dataset != "ds-0" else {"ds-0", "ds-1"})
    portal.remove(*gone)
    clock.advance(hours=1)

    run = harvest(client, {"url": portal.base_url})

    assert run["removed_upstream"] == 2
    without_copy = [before[d]["id"] for d in gone if before[d]["id"] != copied]
    listed = client.get("/assets", params={"state": "removed_upstream", "copies": 0}).json()
    assert [a["id"] for a in listed["items"]] == without_copy
    all_removed = client.get("/assets", params={"state": "removed_upstream"}).json()["items"]
    assert sorted(a["dataset_id"] for a in all_removed) == gone
    # One notice for the run that found removals, naming them, and the assets without copy.
    [notice] = receiver.notices
    assert notice["event"] == "removed_upstream" and notice["run_id"] == run["id"]
    assert notice["removed_datasets"] == gone
    assert [a["id"] for a in notice["assets"]] == without_copy
    assert notice["assets_without_copy"] == len(without_copy)
    # The emergency comes first: before every other asset of its former priority.
    handed = client.post("/allocate", json={"node_id": "n2", "free_space_gb": 0.011}).json()
    assert [a["id"] for a in handed] == without_copy
    assert client.get("/status").json()["removed_without_copy"] == len(without_copy)
    panel = client.get("/dashboard/panel").text
    assert 'id="removed-without-copy"' in panel and without_copy[0] in panel

    clock.advance(hours=1)
    harvest(client, {"url": portal.base_url})  # nothing newly removed: no new notice
    assert len(receiver.notices) == 1


def test_without_a_webhook_a_harvest_with_removals_sends_nothing(
    start_service, clock, portal, receiver
):
    client, _database, _settings = start_service()
    harvest(client, {"url": portal.base_url})
    portal.remove("ds-3")
    clock.advance(hours=1)
    assert harvest(client, {"url": portal.base_url})["removed_upstream"] == 1
    assert receiver.notices == []


def test_a_webhook_setting_that_is_not_a_url_stops_start_up(tmp_path):
    from pydantic import ValidationError

    from priorizer.config import Settings

    with pytest.raises(ValidationError, match="http"):
        Settings.of(removal_webhook_url="ftp://example.org/hook", data_directory=tmp_path)
