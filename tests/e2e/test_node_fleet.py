"""Several `priorizer node` processes on one server (issue 14): a second node verifies against
the first copy's checksum; ten nodes reach the replication target without fetching anything
twice; a node whose origin is gone fetches the file from a seeding node's torrent."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.nodes import MIB, Campaign, events, sha256, wait_for
from tests.support.origin import Origin, Route, random_bytes
from tests.support.priorizer_server import PriorizerServer, describe

pytestmark = pytest.mark.slow


@pytest.fixture
def rescue(tmp_path: Path) -> Iterator[Campaign]:
    with Origin() as origin, PriorizerServer(tmp_path) as server:
        yield Campaign(server, origin, tmp_path)


def row(asset_id: str, url: str, size: int, priority: int = 5) -> dict:
    return {
        "id": asset_id,
        "url": url,
        "name": f"{asset_id}.bin",
        "size_mb": round(size / MIB, 3),
        "priority": priority,
    }


def outcomes(rescue: Campaign, asset_id: str) -> dict[str, dict]:
    """Each node's allocation of the asset that ended in a copy or a failure (a node given
    back an asset it failed releases it at once: issue 11)."""
    return {
        lease["node_id"]: lease
        for lease in rescue.allocations(asset_id=asset_id)
        if lease["status"] != "released"
    }


def test_a_second_node_checks_the_first_copy_and_reports_a_changed_origin(
    rescue: Campaign, tmp_path: Path
) -> None:
    first, changed = random_bytes(500_000, 31), random_bytes(500_000, 32)
    rescue.origin.add("/data.bin", Route("file", first))
    rescue.catalog([row("data", rescue.origin.url("/data.bin"), len(first))])
    result = rescue.run_node(tmp_path / "a", "--node-id", "node-a")
    assert result.returncode == 0, describe(result)

    rescue.origin.add("/data.bin", Route("file", changed))  # the origin's bytes change
    result = rescue.run_node(tmp_path / "b", "--node-id", "node-b")
    assert result.returncode == 0, describe(result)

    leases = outcomes(rescue, "data")
    assert leases["node-a"]["status"] == "completed"
    assert leases["node-a"]["checksum_sha256"] == sha256(first)
    assert leases["node-b"]["status"] == "failed"
    assert leases["node-b"]["reason_code"] == "checksum_mismatch"
    assert sha256(changed) in leases["node-b"]["note"]  # what it got, for the operator
    asset = rescue.asset("data")
    assert asset["copies"] == 1 and asset["checksum_sha256"] == sha256(first)
    assert [h["reason_code"] for h in asset["history"] if h["status"] == "failed"] == [
        "checksum_mismatch"
    ]
    assert not any((tmp_path / "b" / "files" / "data").iterdir())  # nothing kept


def test_ten_nodes_reach_the_target_and_never_fetch_a_file_twice(
    rescue: Campaign, tmp_path: Path
) -> None:
    files = {f"f{i:02d}": random_bytes(150_000 + 7_000 * i, 100 + i) for i in range(24)}
    for name, data in files.items():
        rescue.origin.add(f"/{name}.bin", Route("file", data))
    rescue.catalog(
        [
            row(n, rescue.origin.url(f"/{n}.bin"), len(d), 1 + i % 10)
            for i, (n, d) in enumerate(files.items())
        ]
    )
    nodes = [f"node-{i}" for i in range(10)]

    def run(node: str) -> None:
        # About a seventh of the copies wanted each: the fleet has to share the work.
        result = rescue.run_node(
            tmp_path / node, "--node-id", node, "--max-gb", "0.0016", "--concurrency", "2"
        )
        assert result.returncode == 0, describe(result)

    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(run, nodes))

    completed = rescue.allocations(status="completed")
    holders = Counter(lease["asset_id"] for lease in completed)
    assert holders == dict.fromkeys(files, 2)  # the replication target, no more
    assert len({(lease["asset_id"], lease["node_id"]) for lease in completed}) == len(completed)
    for lease in completed:
        assert lease["checksum_sha256"] == sha256(files[lease["asset_id"]])
        path = tmp_path / lease["node_id"] / "files" / lease["asset_id"]
        assert (path / f"{lease['asset_id']}.bin").read_bytes() == files[lease["asset_id"]]
    fetched = Counter((r.node, r.path) for r in rescue.origin.log())
    assert max(fetched.values()) == 1, fetched.most_common(3)
    assert len({lease["node_id"] for lease in completed}) >= 5  # the work was spread


def test_a_node_fetches_from_a_seeding_peer_when_the_origin_is_gone(
    rescue: Campaign, tmp_path: Path
) -> None:
    data = random_bytes(1_500_000, 41)
    rescue.origin.add("/rare.bin", Route("file", data))
    rescue.catalog([row("rare", rescue.origin.url("/rare.bin"), len(data), priority=9)])
    seeder = rescue.start_node(tmp_path / "a", "--node-id", "seeder", "--seed")
    try:
        copy = wait_for(
            lambda: rescue.allocations(asset_id="rare", status="completed"),
            timeout=30,
            what="the first copy",
        )[0]
        assert copy["magnet_link"].startswith("magnet:?xt=urn:btih:")
        assert "&x.pe=127.0.0.1:" in copy["magnet_link"]
        rescue.origin.add("/rare.bin", Route("status", status=410))  # the origin is gone

        result = rescue.run_node(tmp_path / "b", "--node-id", "rescuer")
        assert result.returncode == 0, describe(result)
    finally:
        with contextlib.suppress(Exception):
            assert seeder.stop() == 0, seeder.logs()

    assert (tmp_path / "b" / "files" / "rare" / "rare.bin").read_bytes() == data
    leases = outcomes(rescue, "rare")
    assert leases["rescuer"]["status"] == "completed"
    assert leases["rescuer"]["checksum_sha256"] == sha256(data)
    assert [r.node for r in rescue.origin.log("/rare.bin")] == ["seeder", "rescuer"]
    done = [e for e in events(result.stderr) if e["event"] == "done"]
    assert done and done[0]["message"] == "rare.bin from peers"
    assert rescue.asset("rare")["copies"] == 2
