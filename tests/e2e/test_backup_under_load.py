"""`priorizer backup` and `priorizer restore`, as real processes, on SQLite and on PostgreSQL:
a backup under load.

A backup taken while sixteen nodes write through a real server (4,000-asset catalog) is a
snapshot: restored into a fresh database (a new DATA_DIRECTORY, a new PostgreSQL database), it
keeps every rule (holders <= REPLICATION_TARGET, the assets' `leases`/`copies` counters equal
their allocations, no node holding an asset twice), holds every answer acknowledged before
the backup started and nothing sent after it ended, and a server started on it serves.

Every database is read with SQLAlchemy directly; servers are
`tests.support.priorizer_server.PriorizerServer`.
PostgreSQL tests are skipped loudly when no PostgreSQL answers or pg_dump/pg_restore are missing.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.backup import Db, dump, known_bug, last_json, no_traceback
from tests.support.priorizer_server import PriorizerServer, describe, run_cli

pytestmark = pytest.mark.slow

CATALOG_SIZE = 4000
NODES = 16
REPLICATION_TARGET = 2  # the default: servers and commands are not told otherwise
MAX_ASSETS = 50  # the default MAX_ASSETS_PER_ALLOCATION
KEEP_OPEN = 6  # leases each node leaves open, so the backup holds open leases as well as copies
WARM_UP_ANSWERS = 400  # answers the nodes have had before the backup starts
WARM_UP_TIMEOUT = 20.0
AFTER_BACKUP = 1.0  # seconds the nodes go on writing once the backup is written
REQUEST_TIMEOUT = 30.0
HOLDING = ("allocated", "completed")


# --- the nodes -------------------------------------------------------------------------------


@dataclass
class Lease:
    allocation_id: int
    asset_id: str
    node_id: str
    sent: float  # time.monotonic() when its /allocate was sent
    acked: float  # ... and when the answer arrived


@dataclass
class Completion:
    allocation_id: int
    sent: float
    acked: float


@dataclass
class Ledger:
    """What one node was told (2xx answers only)."""

    node_id: str
    free_space_gb: float
    leases: list[Lease] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    kept: int = 0
    failure: str | None = None

    @property
    def answers(self) -> int:
        return len(self.leases) + len(self.completions)


def run_node(base_url: str, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    """Allocate; complete most of what it got (keep up to KEEP_OPEN leases open); again."""
    rng = random.Random(seed)
    node = ledger.node_id
    try:
        with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
            while not stop.is_set():
                sent = time.monotonic()
                response = client.post(
                    "/allocate", json={"node_id": node, "free_space_gb": ledger.free_space_gb}
                )
                acked = time.monotonic()
                if response.status_code != 200:
                    ledger.failure = f"/allocate -> {response.status_code} {response.text[:300]}"
                    return
                items = response.json()
                for item in items:
                    if item["node_id"] != node:
                        ledger.failure = f"/allocate answered {item}"
                        return
                    ledger.leases.append(
                        Lease(item["allocation_id"], item["id"], node, sent, acked)
                    )
                if not items:
                    time.sleep(0.05)
                for item in items:
                    if ledger.kept < KEEP_OPEN and rng.random() < 0.1:
                        ledger.kept += 1
                        continue
                    sent = time.monotonic()
                    response = client.post(
                        "/complete", json={"asset_id": item["id"], "node_id": node}
                    )
                    acked = time.monotonic()
                    if response.status_code != 200:
                        ledger.failure = (
                            f"/complete {item['id']} -> {response.status_code} "
                            f"{response.text[:300]}"
                        )
                        return
                    answer = response.json()
                    if (answer["allocation_id"], answer["already_recorded"]) != (
                        item["allocation_id"],
                        False,
                    ):
                        ledger.failure = f"/complete {item['id']} answered {answer}"
                        return
                    ledger.completions.append(Completion(item["allocation_id"], sent, acked))
                    if stop.is_set():
                        return
    except httpx.HTTPError as error:
        ledger.failure = f"{type(error).__name__}: {error}"


class Workload:
    """NODES nodes writing through one server, each in its own thread."""

    def __init__(self, base_url: str, seed: int = 11) -> None:
        self.ledgers = [
            Ledger(f"backup-node-{i:02d}", round(0.25 + 0.05 * i, 2)) for i in range(NODES)
        ]
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(
                target=run_node,
                args=(base_url, ledger, self.stop, seed * 1000 + i),
                name=ledger.node_id,
                daemon=True,
            )
            for i, ledger in enumerate(self.ledgers)
        ]

    def __enter__(self) -> Workload:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(REQUEST_TIMEOUT + 5)

    @property
    def answers(self) -> int:
        return sum(ledger.answers for ledger in self.ledgers)

    def problems(self) -> list[str]:
        return [f"{x.node_id}: {x.failure}" for x in self.ledgers if x.failure]

    def wait_for(self, answers: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.answers < answers:
            assert not self.problems(), self.problems()
            assert time.monotonic() < deadline, f"only {self.answers} answers after {timeout}s"
            time.sleep(0.01)

    def leases(self) -> list[Lease]:
        return [lease for x in self.ledgers for lease in x.leases]

    def completions(self) -> list[Completion]:
        return [done for x in self.ledgers for done in x.completions]


def catalog(seed: int = 20260115) -> list[dict[str, Any]]:
    """4,000 assets of 1-20 MiB, priorities 1-10: each /allocate hands out dozens."""
    rng = random.Random(seed)
    return [
        {
            "id": f"bk-{n:04d}",
            "url": f"https://data.example.org/backup/{n:04d}.csv",
            "name": f"{n:04d}.csv",
            "size_mb": round(rng.uniform(1, 20), 3),
            "priority": rng.randint(1, 10),
            "dataset_id": f"bk-ds-{n % 40}",
            "format": "CSV",
        }
        for n in range(CATALOG_SIZE)
    ]


# --- the checks ------------------------------------------------------------------------------


def read_allocations(url: str) -> tuple[dict[int, Any], dict[str, Any], set[str], list[str]]:
    """(allocations by id, assets by id, node ids, schema versions) of the database at `url`."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = {
                row.id: row
                for row in conn.execute(
                    text("SELECT id, asset_id, node_id, status FROM allocations")
                )
            }
            assets = {
                row.id: row
                for row in conn.execute(text("SELECT id, size_mb, copies, leases FROM assets"))
            }
            nodes = {row.id for row in conn.execute(text("SELECT id FROM nodes"))}
            versions = [
                row.version_num
                for row in conn.execute(text("SELECT version_num FROM alembic_version"))
            ]
    finally:
        engine.dispose()
    return rows, assets, nodes, versions


def check_consistent(url: str) -> tuple[dict[int, Any], dict[str, Any], set[str], list[str]]:
    """At most REPLICATION_TARGET holders per asset, counters equal to the allocations, no node
    holding an asset twice, every allocation's node known."""
    rows, assets, nodes, versions = read_allocations(url)
    holding = Counter((row.node_id, row.asset_id) for row in rows.values() if row.status in HOLDING)
    twice = [pair for pair, n in holding.items() if n > 1]
    assert not twice, f"a node holds an asset twice: {twice[:10]}"
    leases = Counter(row.asset_id for row in rows.values() if row.status == "allocated")
    copies = Counter(row.asset_id for row in rows.values() if row.status == "completed")
    over = {a: n for a, n in (leases + copies).items() if n > REPLICATION_TARGET}
    assert not over, f"more holders than REPLICATION_TARGET: {over}"
    drift = {
        asset_id: ((row.leases, row.copies), (leases[asset_id], copies[asset_id]))
        for asset_id, row in assets.items()
        if (row.leases, row.copies) != (leases[asset_id], copies[asset_id])
    }
    assert not drift, f"(leases, copies) stored != in allocations: {dict(list(drift.items())[:10])}"
    unknown = {row.node_id for row in rows.values()} - nodes
    assert not unknown, f"allocations of nodes the nodes table lacks: {unknown}"
    assert len(versions) == 1, versions
    return rows, assets, nodes, versions


def check_snapshot(
    rows: dict[int, Any], work: Workload, *, t_start: float, t_end: float
) -> dict[str, int]:
    """Every answer acknowledged before `t_start` is in the backup, nothing sent after `t_end`
    is, and every row is one the nodes were told about (all their requests were answered)."""
    leases = {lease.allocation_id: lease for lease in work.leases()}
    completions = {done.allocation_id: done for done in work.completions()}
    assert len(leases) == len(work.leases()), "an allocation id was handed out twice"
    assert completions.keys() <= leases.keys()

    missing, wrong, late = [], [], []
    for lease in leases.values():
        row = rows.get(lease.allocation_id)
        if row is None:
            if lease.acked < t_start:
                missing.append(lease)
            continue
        if (row.asset_id, row.node_id) != (lease.asset_id, lease.node_id):
            wrong.append((lease, tuple(row)))
        if lease.sent > t_end:
            late.append((lease, tuple(row)))
    assert not missing, f"{len(missing)} leases acknowledged before the backup lost: {missing[:5]}"
    assert not wrong, f"rows not as the nodes were told: {wrong[:5]}"
    assert not late, f"leases asked for after the backup ended are in it: {late[:5]}"

    not_completed, completed_late = [], []
    for done in completions.values():
        row = rows.get(done.allocation_id)
        status = None if row is None else row.status
        if done.acked < t_start and status != "completed":
            not_completed.append((done, status))
        if done.sent > t_end and status == "completed":
            completed_late.append(done)
    assert not not_completed, (
        f"{len(not_completed)} completions acknowledged before the backup are not copies in it: "
        f"{not_completed[:5]}"
    )
    assert not completed_late, f"completions sent after the backup are in it: {completed_late[:5]}"

    strays = [tuple(row) for row in rows.values() if row.id not in leases]
    assert not strays, f"rows no node was told about: {strays[:5]}"
    statuses = Counter(row.status for row in rows.values())
    assert set(statuses) <= set(HOLDING), statuses
    unasked = [
        row.id for row in rows.values() if row.status == "completed" and row.id not in completions
    ]
    assert not unasked, f"copies no node reported: {unasked[:10]}"
    return {
        "acked_before": sum(1 for x in leases.values() if x.acked < t_start)
        + sum(1 for x in completions.values() if x.acked < t_start),
        "acked_during": sum(1 for x in leases.values() if t_start <= x.acked <= t_end)
        + sum(1 for x in completions.values() if t_start <= x.acked <= t_end),
        "sent_after": sum(1 for x in leases.values() if x.sent > t_end)
        + sum(1 for x in completions.values() if x.sent > t_end),
        "rows": len(rows),
        "open": statuses["allocated"],
        "copies": statuses["completed"],
    }


def check_serves(server: PriorizerServer, rows: dict[int, Any]) -> None:
    """A server on the restored database: healthy, its /status agrees, it hands out work to a
    new node (with ids past the restored ones), and an old node completes a restored lease."""
    statuses = Counter(row.status for row in rows.values())
    with server.client() as client:
        assert client.get("/health").status_code == 200
        status = client.get("/status")
        assert status.status_code == 200, status.text
        assert status.json()["assets"] == CATALOG_SIZE
        assert status.json()["active_allocations"] == statuses["allocated"], status.json()
        assert status.json()["copies"] == statuses["completed"], status.json()

        fresh = client.post("/allocate", json={"node_id": "after-restore", "free_space_gb": 1})
        assert fresh.status_code == 200, fresh.text
        assert fresh.json(), "the restored database hands out work to a new node"
        assert min(item["allocation_id"] for item in fresh.json()) > max(rows, default=0)

        open_lease = next(row for row in rows.values() if row.status == "allocated")
        done = client.post(
            "/complete", json={"asset_id": open_lease.asset_id, "node_id": open_lease.node_id}
        )
        assert done.status_code == 200, done.text
        assert done.json()["allocation_id"] == open_lease.id, done.json()

        held = {row.asset_id for row in rows.values() if row.node_id == open_lease.node_id}
        again = client.post("/allocate", json={"node_id": open_lease.node_id, "free_space_gb": 1})
        assert again.status_code == 200, again.text
        assert not held & {item["id"] for item in again.json()}, "handed an asset it holds"


# --- the tests -------------------------------------------------------------------------------


def test_backup_under_load_restores_into_a_fresh_database_that_serves(
    new_database: Callable[[str], Db], tmp_path: Path
) -> None:
    source = new_database("source")
    source.data_directory.mkdir(parents=True)
    (source.data_directory / "ckan_data.json").write_text(json.dumps(catalog()), encoding="utf-8")
    backup_file = tmp_path / "backups" / "priorizer.backup"

    with PriorizerServer(tmp_path, source.env, name="source-server") as server:
        with Workload(server.base_url) as work:
            work.wait_for(WARM_UP_ANSWERS, WARM_UP_TIMEOUT)
            t_start = time.monotonic()
            made = run_cli(["backup", str(backup_file)], server.env)
            t_end = time.monotonic()
            time.sleep(AFTER_BACKUP)
        assert not work.problems(), work.problems()
        assert all(not t.is_alive() for t in work.threads), "nodes still waiting for an answer"
        source_logs = server.logs()
    assert made.returncode == 0, describe(made)
    assert "Traceback" not in source_logs, source_logs
    written = last_json(made)
    assert str(backup_file) in written.values(), written
    assert written["bytes"] == backup_file.stat().st_size > 0, written
    source_versions = read_allocations(source.url)[3]

    target = new_database("target")
    restored = run_cli(["restore", str(backup_file)], target.env)
    assert restored.returncode == 0, describe(restored)
    no_traceback(restored)

    rows, assets, nodes, versions = check_consistent(target.url)
    figures = check_snapshot(rows, work, t_start=t_start, t_end=t_end)
    assert figures["acked_during"] > 0, "the nodes wrote while the backup ran"
    assert figures["sent_after"] > 0, "the nodes wrote after the backup"
    assert figures["open"] > 0 and figures["copies"] > 0, figures
    assert {a["id"]: a["size_mb"] for a in catalog()} == {
        asset_id: row.size_mb for asset_id, row in assets.items()
    }
    assert versions == source_versions, "restored at the current schema"
    if source.url.startswith("sqlite"):
        assert dump(f"sqlite:///{backup_file}") == dump(target.url), "restored == the backup"

    with PriorizerServer(tmp_path, target.env, name="restored-server") as server:
        check_serves(server, rows)
        restored_logs = server.logs()
    assert "Traceback" not in restored_logs, restored_logs
    check_consistent(target.url)
    print(
        f"\nbackup under load: {figures}, backup {written['bytes']} bytes in "
        f"{t_end - t_start:.2f}s, {work.answers} answers in all"
    )

    # What the backup says it wrote is what it holds.
    held = {"assets": len(assets), "allocations": len(rows), "nodes": len(nodes)}
    reported = {k: written[k] for k in held if k in written}
    known_bug(
        reported == {k: held[k] for k in reported},
        f"backup reported {reported}, the backup holds {held} (on PostgreSQL the counts are "
        "read from the live database after pg_dump, not from the dump)",
    )
