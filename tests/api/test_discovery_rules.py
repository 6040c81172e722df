"""What probes change in allocation: gone and expanded assets are not handed out (gone ones
still are from copies' magnet links), probed sizes replace assumed ones, node sizes win."""

from __future__ import annotations

import pytest

from priorizer.catalog import discovered, probes
from priorizer.catalog.probes import Found
from priorizer.queue.policy import queue_policy
from tests.support.factories import add_assets, asset

MIB = 1024 * 1024
MAGNET = "magnet:?xt=urn:btih:" + "a" * 40


@pytest.fixture
def probe(database, settings, clock):
    def record(asset_id: str, found: Found, children: list[Found] | None = None) -> None:
        with database.write() as session:
            probes.record_probe(
                session,
                asset_id=asset_id,
                found=found,
                children=len(children or []),
                is_expanded=children is not None,
                queue=queue_policy(settings),
                now=clock(),
            )
            if children is not None:
                discovered.add_children(
                    session,
                    parent_id=asset_id,
                    children=children,
                    names=[c.url.rsplit("/", 1)[-1] for c in children],
                    formats=["NC" for _c in children],
                    is_complete=True,
                    queue=queue_policy(settings),
                    now=clock(),
                )

    return record


def allocate(client, node_id: str, free_space_gb: float = 100) -> dict[str, dict]:
    response = client.post("/allocate", json={"node_id": node_id, "free_space_gb": free_space_gb})
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()}


def dead(url: str = "https://x/") -> Found:
    return Found(url, "gone", final_url=url, status=404)


def test_gone_assets_are_not_handed_out_and_are_listed(client, database, settings, clock, probe):
    add_assets(database, settings, [asset(1), asset(2)], clock())
    probe("asset-1", dead())

    assert set(allocate(client, "n1")) == {"asset-2"}
    listed = client.get("/assets", params={"state": "gone"}).json()["items"]
    assert [a["id"] for a in listed] == ["asset-1"]
    assert client.get("/status").json()["discovery"]["gone"] == 1
    detail = client.get("/assets/asset-1").json()
    assert detail["state"] == "gone" and detail["discovery"]["probe"]["status"] == 404
    assert 'data-discovery="gone">1<' in client.get("/").text


def test_a_gone_asset_with_a_magnet_link_is_still_handed_out(
    client, database, settings, clock, probe
):
    add_assets(database, settings, [asset(1), asset(2)], clock())
    assert set(allocate(client, "holder")) == {"asset-1", "asset-2"}
    for asset_id, magnet in (("asset-1", MAGNET), ("asset-2", None)):
        body = {"asset_id": asset_id, "node_id": "holder", "size_bytes": 100 * MIB}
        if magnet:
            body["magnet_link"] = magnet
        assert client.post("/complete", json=body).status_code == 200
    probe("asset-1", dead())
    probe("asset-2", dead())

    handed = allocate(client, "second")
    assert set(handed) == {"asset-1"}  # asset-2's copy has no magnet link to fetch from
    assert handed["asset-1"]["magnet_links"] == [MAGNET]
    precious = client.get("/status").json()["discovery"]["gone_with_copies"]
    assert {g["id"] for g in precious} == {"asset-1", "asset-2"}


def test_a_later_probe_that_finds_it_back_clears_gone(client, database, settings, clock, probe):
    add_assets(database, settings, [asset(1)], clock())
    probe("asset-1", dead())
    probe("asset-1", Found("https://x/", "file", status=200, size_bytes=5 * MIB))

    handed = allocate(client, "n1")
    assert set(handed) == {"asset-1"} and handed["asset-1"]["size_mb"] == 5


def test_a_probed_size_replaces_the_assumed_one_at_once(client, database, settings, clock, probe):
    add_assets(database, settings, [asset(1, size_mb=None)], clock())
    assert allocate(client, "small", free_space_gb=0.5) == {}  # 1 GiB assumed: does not fit

    probe("asset-1", Found("https://x/", "file", status=200, size_bytes=300 * MIB))
    handed = allocate(client, "small", free_space_gb=0.5)
    assert handed["asset-1"]["size_mb"] == 300
    assert client.get("/assets/asset-1").json()["discovery"]["probe"]["size_bytes"] == 300 * MIB


def test_a_node_reported_size_wins_over_a_probe(client, database, settings, clock, probe):
    add_assets(database, settings, [asset(1, size_mb=None)], clock())
    allocate(client, "holder")
    done = {"asset_id": "asset-1", "node_id": "holder", "size_bytes": 70 * MIB}
    assert client.post("/complete", json=done).status_code == 200

    probe("asset-1", Found("https://x/", "file", status=200, size_bytes=999 * MIB))
    detail = client.get("/assets/asset-1").json()
    assert detail["size_mb"] == 70
    assert detail["discovery"]["probe"]["size_bytes"] == 999 * MIB


def test_an_expanded_parent_gives_way_to_its_children(client, database, settings, clock, probe):
    add_assets(database, settings, [asset("page", priority=8, dataset_id="sst")], clock())
    children = [
        Found(f"https://data.example.org/sst/{n}.nc", "file", status=200, size_bytes=n * MIB)
        for n in (1, 2)
    ]
    probe("asset-page", Found("https://x/", "listing", status=200), children)

    handed = allocate(client, "n1")
    assert {item["url"] for item in handed.values()} == {c.url for c in children}
    assert {item["priority"] for item in handed.values()} == {8}
    assert {item["dataset_id"] for item in handed.values()} == {"sst"}
    assert sorted(item["size_mb"] for item in handed.values()) == [1, 2]
    parent = client.get("/assets/asset-page").json()
    assert parent["state"] == "expanded" and parent["rank"] is None
    assert parent["discovery"]["children_total"] == 2
    child = client.get(f"/assets/{next(iter(handed))}").json()
    assert child["parent_id"] == "asset-page"
    assert child["discovery"]["parent"]["id"] == "asset-page"
