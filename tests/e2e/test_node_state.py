"""What a node keeps in its folder (issue 14): a restart re-sends the completions the server
never acknowledged and never fetches a held file again; `node status` shows what it holds;
`node verify` finds a file changed on disk, and the server takes that copy back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from priorizer.agent.state import NodeState
from tests.support.nodes import MIB, Campaign, sha256
from tests.support.origin import Origin, Route, random_bytes
from tests.support.priorizer_server import PriorizerServer, describe, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def rescue(tmp_path: Path) -> Iterator[Campaign]:
    with Origin() as origin, PriorizerServer(tmp_path, {"REPLICATION_TARGET": "1"}) as server:
        yield Campaign(server, origin, tmp_path)


def add_files(rescue: Campaign, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        rescue.origin.add(f"/{name}.bin", Route("file", data))
    rescue.catalog(
        [
            {
                "id": name,
                "url": rescue.origin.url(f"/{name}.bin"),
                "name": f"{name}.bin",
                "size_mb": round(len(data) / MIB, 3),
                "priority": 5,
            }
            for name, data in files.items()
        ]
    )


def test_a_restart_resends_unacknowledged_completions_and_fetches_nothing_twice(
    rescue: Campaign, tmp_path: Path
) -> None:
    files = {"held": random_bytes(300_000, 51), "leased": random_bytes(200_000, 52)}
    add_files(rescue, files)
    # A node that died after writing `held` whole, before the server heard of it, and before
    # it started on its other lease.
    with httpx.Client(base_url=rescue.server.base_url) as client:
        given = client.post("/allocate", json={"node_id": "phoenix", "free_space_gb": 1})
    assert sorted(item["id"] for item in given.json()) == ["held", "leased"]
    directory = tmp_path / "node"
    directory.mkdir()
    state = NodeState(directory)
    state.node_id("phoenix")
    path = state.path_for("held", "held.bin")
    state.start("held", url=rescue.origin.url("/held.bin"), name="held.bin", path=path)
    path.parent.mkdir(parents=True)
    path.write_bytes(files["held"])
    state.hold("held", size_bytes=len(files["held"]), sha256=sha256(files["held"]))
    state.close()

    result = rescue.run_node(directory)  # the id kept in the folder
    assert result.returncode == 0, describe(result)

    for name, data in files.items():
        [lease] = rescue.allocations(asset_id=name)
        assert lease["node_id"] == "phoenix" and lease["status"] == "completed", lease
        assert lease["checksum_sha256"] == sha256(data)
    assert rescue.origin.log("/held.bin") == []
    assert len(rescue.origin.log("/leased.bin")) == 1
    assert (directory / "files" / "leased" / "leased.bin").read_bytes() == files["leased"]


def test_status_shows_the_holdings_and_verify_hands_a_damaged_copy_back(
    rescue: Campaign, tmp_path: Path
) -> None:
    files = {"intact": random_bytes(250_000, 61), "damaged": random_bytes(350_000, 62)}
    add_files(rescue, files)
    directory = tmp_path / "node"
    result = rescue.run_node(directory, "--node-id", "keeper")
    assert result.returncode == 0, describe(result)

    status = run_cli(["node", "status", "--dir", str(directory), "--json"], {})
    assert status.returncode == 0, describe(status)
    summary = json.loads(status.stdout)
    assert summary["node_id"] == "keeper"
    assert summary["held"] == {"files": 2, "bytes": 600_000, "verified": 2}
    assert {f["asset_id"]: f["sha256"] for f in summary["files"]} == {
        name: sha256(data) for name, data in files.items()
    }
    table = run_cli(["node", "status", "--dir", str(directory)], {})
    assert "2 files held" in table.stdout and "damaged" in table.stdout

    damaged = directory / "files" / "damaged" / "damaged.bin"
    with damaged.open("r+b") as handle:  # one byte flipped, the size unchanged
        handle.seek(1000)
        handle.write(bytes([files["damaged"][1000] ^ 0xFF]))
    verify = run_cli(["node", "verify", "--dir", str(directory)], {})
    assert verify.returncode == 1, describe(verify)
    assert "DAMAGED  damaged" in verify.stdout and "ok       intact" in verify.stdout
    assert "1 damaged of 2 held files" in verify.stdout
    assert not damaged.exists()
    asset = rescue.asset("damaged")
    assert asset["copies"] == 0 and asset["holders"] == []
    assert "SHA-256 changed" in asset["history"][0]["note"]
    assert rescue.asset("intact")["copies"] == 1

    # The asset is back in the queue: the next run fetches it again, and it is whole.
    result = rescue.run_node(directory, "--node-id", "keeper")
    assert result.returncode == 0, describe(result)
    assert damaged.read_bytes() == files["damaged"]
    assert rescue.asset("damaged")["copies"] == 1
    assert len(rescue.origin.log("/damaged.bin")) == 2
    assert len(rescue.origin.log("/intact.bin")) == 1
    again = run_cli(["node", "verify", "--dir", str(directory)], {})
    assert again.returncode == 0 and "0 damaged of 2 held files" in again.stdout


def test_a_node_acts_with_its_token_under_node_auth(tmp_path: Path) -> None:
    env = {"NODE_AUTH": "true", "PRIORIZER_ENROLLMENT_SECRET": "a-secret-of-the-campaign-0123"}
    with Origin() as origin, PriorizerServer(tmp_path, env) as server:
        rescue = Campaign(server, origin, tmp_path)
        add_files(rescue, {"guarded": random_bytes(100_000, 71)})
        with httpx.Client(base_url=server.base_url) as client:
            enrolled = client.post(
                "/nodes/enroll",
                json={"node_id": "badge"},
                headers={"X-Enrollment-Secret": env["PRIORIZER_ENROLLMENT_SECRET"]},
            )
        token = enrolled.json()["token"]
        args = rescue.node_args(tmp_path / "node", "--exit-when-idle", "--node-id", "badge")
        refused = run_cli(args, {}, timeout=60)  # no token: the node stops, saying why
        assert refused.returncode == 2 and "401" in refused.stderr, describe(refused)
        assert rescue.allocations() == []
        result = run_cli(args, {"PRIORIZER_NODE_TOKEN": token}, timeout=60)
        assert result.returncode == 0, describe(result)
        [lease] = rescue.allocations(asset_id="guarded")
        assert lease["node_id"] == "badge" and lease["status"] == "completed"


def test_node_commands_say_what_is_missing(tmp_path: Path) -> None:
    nothing = run_cli(["node", "status", "--dir", str(tmp_path)], {})
    assert nothing.returncode == 2
    assert "holds no node" in nothing.stderr
    no_server = run_cli(["node", "--dir", str(tmp_path)], {})
    assert no_server.returncode == 2
    assert "--server" in no_server.stderr
    assert not (tmp_path / "priorizer-node.sqlite3").exists()
