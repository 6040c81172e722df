"""Many nodes asking at once, against real `priorizer serve` processes over real HTTP.

The catalog is written straight into the database before the server starts; the checks read the
same database with SQLAlchemy as well as the HTTP answers, so a rule broken in either place shows.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from priorizer.catalog.service import NewAsset
from priorizer.config import Settings
from priorizer.db import Database
from priorizer.queue import policy
from priorizer.queue.policy import queue_policy
from priorizer.startup import prepare
from tests.conftest import create_pg_database, drop_pg_database, make_settings, pg_skip_reason
from tests.support.factories import add_assets, asset
from tests.support.priorizer_server import PriorizerServer

pytestmark = pytest.mark.slow

CATALOG_SIZE = 5000
NODES = 32
CALLS_PER_NODE = 2
REPLICATION_TARGET = 2  # the default; the servers are not told otherwise
UNKNOWN_SIZE_MB = 1024.0  # the default
MAX_ASSETS = 50  # the default MAX_ASSETS_PER_ALLOCATION
EPSILON_MB = 1e-6
# The servers' queue policy: the defaults (copy penalty, size penalty, fill order).
QUEUE = queue_policy(Settings.of(run_scheduler=False))


# --- the catalog and the nodes ---------------------------------------------------------------


def big_catalog(seed: int = 20260115) -> list[NewAsset]:
    """5,000 assets, 1-3000 MiB, ~8% of unknown size. Priorities are skewed so the top levels are
    small (priority p is about twice as common as p+1): the 64 requests exhaust them, their second
    copies come back at rank p-3 and the replication target is really contended."""
    rng = random.Random(seed)
    priorities = list(range(1, 11))
    weights = [2.0 ** (10 - p) for p in priorities]
    items = []
    for n in range(CATALOG_SIZE):
        size = None if rng.random() < 0.08 else round(rng.uniform(1, 3000), 3)
        priority = rng.choices(priorities, weights)[0]
        items.append(asset(n, size_mb=size, priority=priority))
    # Every priority level is represented, including an unknown size at the top.
    for p in priorities:
        items[p] = asset(p, size_mb=None if p == 10 else 10.0 * p, priority=p)
    return items


def node_space_gb() -> dict[str, float]:
    """32 nodes with 5 to 60 GiB free, not all round numbers."""
    return {
        f"node-{i:02d}": round(5 + 55 * i / (NODES - 1) + (0.37 if i % 3 else 0.0), 2)
        for i in range(NODES)
    }


def load_catalog(db_url: str, tmp_path: Path, items: list[NewAsset], **overrides: Any) -> None:
    """Migrate the database and write the catalog in one transaction, before any server runs."""
    settings = make_settings(db_url, tmp_path / "loader", **overrides)
    prepare(settings)
    database = Database(settings.sqlalchemy_url)
    try:
        add_assets(database, settings, items, datetime.now(UTC))
    finally:
        database.dispose()


# --- firing requests at once -----------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    base_url: str
    node_id: str
    free_space_gb: float


@dataclass(frozen=True)
class Answer:
    call: Call
    status_code: int
    body: Any
    started: float
    ended: float


def fire_at_once(calls: Sequence[Call], *, timeout: float = 120.0) -> list[Answer]:
    """Send every call from its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    limits = httpx.Limits(max_connections=len(calls), max_keepalive_connections=len(calls))
    clients = {
        base: httpx.Client(base_url=base, timeout=timeout, limits=limits)
        for base in {c.base_url for c in calls}
    }

    def send(call: Call) -> Answer:
        client = clients[call.base_url]
        client.get("/health").raise_for_status()  # open this thread's connection first
        barrier.wait(timeout=30)
        started = time.monotonic()
        response = client.post(
            "/allocate", json={"free_space_gb": call.free_space_gb, "node_id": call.node_id}
        )
        body = response.json() if response.status_code == 200 else response.text
        return Answer(call, response.status_code, body, started, time.monotonic())

    try:
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(send, calls, timeout=timeout + 60))
    finally:
        for client in clients.values():
            client.close()


def peak_in_flight(answers: Sequence[Answer]) -> int:
    """The most requests that were open at the same moment (as the client saw them)."""
    events = sorted([(a.started, 1) for a in answers] + [(a.ended, -1) for a in answers])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def node_calls(bases: Sequence[str]) -> list[Call]:
    """The calls go round-robin over `bases`: a node's two calls to two different servers."""
    return [
        Call(bases[(n * CALLS_PER_NODE + k) % len(bases)], node_id, gb)
        for n, (node_id, gb) in enumerate(node_space_gb().items())
        for k in range(CALLS_PER_NODE)
    ]


# --- the invariants --------------------------------------------------------------------------


def check_invariants(
    db_url: str, answers: list[Answer], catalog: list[NewAsset], *, target: int
) -> dict[str, Any]:
    """Assert every allocation rule on the HTTP answers and on the database; return figures."""
    failed = [a for a in answers if a.status_code != 200]
    assert not failed, [(a.call, a.status_code, str(a.body)[:500]) for a in failed[:5]]
    sizes = {item.id: item.size_mb for item in catalog}
    priorities = {item.id: item.priority for item in catalog}
    space = {a.call.node_id: a.call.free_space_gb for a in answers}

    # --- from the responses ---
    by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for answer in answers:
        assert len(answer.body) <= MAX_ASSETS, "more than MAX_ASSETS_PER_ALLOCATION in one answer"
        per_call_mb = 0.0
        for item in answer.body:
            assert item["node_id"] == answer.call.node_id
            expected_mb = UNKNOWN_SIZE_MB if sizes[item["id"]] is None else sizes[item["id"]]
            assert item["reserved_mb"] == pytest.approx(expected_mb), item
            assert item["size_mb"] == sizes[item["id"]]
            assert item["priority"] == priorities[item["id"]]
            per_call_mb += item["reserved_mb"]
            by_node[answer.call.node_id].append(item)
        assert per_call_mb <= answer.call.free_space_gb * 1024 + EPSILON_MB
    for node_id, items in by_node.items():
        ids = [item["id"] for item in items]
        duplicates = [i for i, n in Counter(ids).items() if n > 1]
        assert not duplicates, f"{node_id} got {duplicates} twice across its calls"
        total = sum(item["reserved_mb"] for item in items)
        assert total <= space[node_id] * 1024 + EPSILON_MB, (
            f"{node_id}: its calls together reserved {total} MiB of {space[node_id] * 1024}"
        )
    handed_out = Counter(item["id"] for items in by_node.values() for item in items)
    over = {i: n for i, n in handed_out.items() if n > target}
    assert not over, f"handed out more than {target} times: {over}"
    answered_ids = {item["allocation_id"] for items in by_node.values() for item in items}

    # --- from the database ---
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            allocations = conn.execute(
                text("SELECT id, asset_id, node_id, status, reserved_mb FROM allocations")
            ).all()
            assets = {
                row.id: row
                for row in conn.execute(
                    text("SELECT id, priority, copies, leases, rank, budget_mb FROM assets")
                )
            }
            nodes = {
                row.id: row.free_space_mb
                for row in conn.execute(text("SELECT id, free_space_mb FROM nodes"))
            }
    finally:
        engine.dispose()

    assert all(row.status == "allocated" for row in allocations), "only leases were made"
    assert {row.id for row in allocations} == answered_ids, (
        "the open leases in the database are exactly those the answers reported"
    )
    assert len(assets) == len(catalog)
    held = Counter((row.asset_id, row.node_id) for row in allocations)
    assert max(held.values(), default=0) == 1, "a node holds an asset twice"
    open_per_asset = Counter(row.asset_id for row in allocations)
    reserved_per_node: Counter[str] = Counter()
    for row in allocations:
        reserved_per_node[row.node_id] += row.reserved_mb
    for node_id, reserved in reserved_per_node.items():
        assert reserved <= space[node_id] * 1024 + EPSILON_MB, (node_id, reserved)
    assert set(nodes) == set(space)
    for node_id, free_mb in nodes.items():
        assert free_mb == pytest.approx(space[node_id] * 1024)

    drift = {
        asset_id: (row.leases, open_per_asset[asset_id])
        for asset_id, row in assets.items()
        if row.leases != open_per_asset[asset_id]
    }
    assert not drift, (
        f"assets.leases != open allocations (counter, real): {dict(list(drift.items())[:10])}"
    )
    over_target = {
        asset_id: row.leases + row.copies
        for asset_id, row in assets.items()
        if row.leases + row.copies > target
    }
    assert not over_target, f"more holders than REPLICATION_TARGET: {over_target}"
    wrong_rank = {}
    for asset_id, row in assets.items():
        holders = row.leases + row.copies
        expected = policy.rank(row.priority, holders, True, QUEUE, budget_mb=row.budget_mb)
        if row.rank != expected:
            wrong_rank[asset_id] = (row.priority, holders, row.rank, expected)
    assert not wrong_rank, f"rank not recomputed: {dict(list(wrong_rank.items())[:10])}"

    total_space_mb = sum(gb * 1024 for gb in space.values())
    return {
        "leases": len(allocations),
        "reserved_mb": sum(reserved_per_node.values()),
        "total_space_mb": total_space_mb,
        "nodes_served": len(reserved_per_node),
        "at_target": sum(1 for n in open_per_asset.values() if n >= target),
        "open_per_asset": open_per_asset,
        "priorities": priorities,
    }


def check_not_vacuous(figures: dict[str, Any]) -> None:
    """The run cannot pass by handing out nothing: most nodes got work, a good part of the disks
    filled up, the top of the queue was leased and many assets reached the replication target.
    (Floors well below what a correct run gives, so that losing races is not a failure here.)"""
    assert figures["nodes_served"] >= NODES // 2, figures["nodes_served"]
    assert figures["reserved_mb"] >= 0.3 * figures["total_space_mb"], (
        figures["reserved_mb"],
        figures["total_space_mb"],
    )
    assert figures["leases"] >= 200, figures["leases"]
    assert figures["at_target"] >= 50, figures["at_target"]
    top = [i for i, p in figures["priorities"].items() if p >= 7]
    served = sum(1 for i in top if figures["open_per_asset"][i] >= 1)
    assert served >= 0.8 * len(top), f"only {served} of the {len(top)} top assets leased"


def check_no_node_starved(figures: dict[str, Any]) -> None:
    """Liveness: the catalog is ~7 times larger than all disks together and holds thousands of
    small files, so every node gets work and the disks fill up, races or not."""
    assert figures["nodes_served"] == NODES, f"{NODES - figures['nodes_served']} nodes got nothing"
    assert figures["reserved_mb"] >= 0.9 * figures["total_space_mb"], (
        f"only {figures['reserved_mb'] / figures['total_space_mb']:.0%} of the free space leased"
    )


# --- the tests -------------------------------------------------------------------------------


def burst_on_one_server(db_url: str, tmp_path: Path) -> tuple[list[NewAsset], list[Answer]]:
    catalog = big_catalog()
    load_catalog(db_url, tmp_path, catalog)
    with PriorizerServer(tmp_path, {"DATABASE_URL": db_url}) as server:
        answers = fire_at_once(node_calls([server.base_url]))
        logs = server.logs()
    assert len(answers) == NODES * CALLS_PER_NODE
    assert peak_in_flight(answers) >= len(answers) // 2, "the requests really overlapped"
    assert "Traceback" not in logs, logs
    return catalog, answers


def test_64_concurrent_allocations_keep_every_rule(db_url: str, tmp_path: Path) -> None:
    catalog, answers = burst_on_one_server(db_url, tmp_path)

    figures = check_invariants(db_url, answers, catalog, target=REPLICATION_TARGET)
    check_not_vacuous(figures)


def test_64_concurrent_allocations_starve_no_node(db_url: str, tmp_path: Path) -> None:
    catalog, answers = burst_on_one_server(db_url, tmp_path)

    figures = check_invariants(db_url, answers, catalog, target=REPLICATION_TARGET)
    check_no_node_starved(figures)


@pytest.fixture
def fresh_pg_url() -> Any:
    reason = pg_skip_reason()
    if reason:
        pytest.skip(reason)
    url = create_pg_database("priorizer_e2e")
    try:
        yield url
    finally:
        drop_pg_database(url)


def test_two_servers_on_one_postgresql_keep_every_rule(fresh_pg_url: str, tmp_path: Path) -> None:
    catalog = big_catalog(seed=7)
    load_catalog(fresh_pg_url, tmp_path, catalog)
    env = {"DATABASE_URL": fresh_pg_url}

    with (
        PriorizerServer(tmp_path, env, name="server-a") as a,
        PriorizerServer(tmp_path, env, name="server-b") as b,
    ):
        calls = node_calls([a.base_url, b.base_url])
        # Each node's two calls race on different servers.
        for first, second in zip(calls[::2], calls[1::2], strict=True):
            assert first.node_id == second.node_id and first.base_url != second.base_url
        answers = fire_at_once(calls)
        logs = a.logs() + b.logs()
    assert peak_in_flight(answers) >= len(answers) // 2, "the requests really overlapped"

    figures = check_invariants(fresh_pg_url, answers, catalog, target=REPLICATION_TARGET)
    check_not_vacuous(figures)
    served_by = Counter(answer.call.base_url for answer in answers if answer.body)
    assert len(served_by) == 2, f"both servers handed out work: {served_by}"
    assert "Traceback" not in logs, logs


def test_four_servers_on_one_postgresql_keep_every_rule(fresh_pg_url: str, tmp_path: Path) -> None:
    """Instances add capacity only if they keep the rules together: four server processes on
    one database, 32 nodes each asking twice (on two different servers) at the same moment."""
    catalog = big_catalog(seed=11)
    load_catalog(fresh_pg_url, tmp_path, catalog)
    env = {"DATABASE_URL": fresh_pg_url}
    servers = [PriorizerServer(tmp_path, env, name=f"server-{x}") for x in "abcd"]
    with ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
            server.launch()
        for server in servers:
            server.wait_healthy()
        bases = [server.base_url for server in servers]
        calls = node_calls(bases)
        for first, second in zip(calls[::2], calls[1::2], strict=True):
            assert first.node_id == second.node_id and first.base_url != second.base_url
        answers = fire_at_once(calls)
        logs = "".join(server.logs() for server in servers)
    assert peak_in_flight(answers) >= len(answers) // 2, "the requests really overlapped"

    figures = check_invariants(fresh_pg_url, answers, catalog, target=REPLICATION_TARGET)
    check_not_vacuous(figures)
    served_by = Counter(answer.call.base_url for answer in answers if answer.body)
    assert len(served_by) == 4, f"every server handed out work: {served_by}"
    assert "Traceback" not in logs, logs


def test_two_servers_starting_together_migrate_and_load_the_demo_once(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    """Start-up on PostgreSQL takes an advisory lock: two servers started at the same moment on
    an empty database migrate it once and load the demo catalog once, and both serve it."""
    env = {"DATABASE_URL": fresh_pg_url}
    servers = [PriorizerServer(tmp_path, env, args=["--demo"], name=f"server-{x}") for x in "ab"]
    with ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
            server.launch()
        for server in servers:
            server.wait_healthy()
        for server in servers:
            with server.client() as client:
                status = client.get("/status")
                assert status.status_code == 200, status.text
                assert status.json()["assets"] == 200
                served = client.post("/allocate", json={"free_space_gb": 1})
                assert served.status_code == 200, served.text
                assert served.json(), f"{server.name} hands out work"
        logs = [server.logs() for server in servers]

    assert sum("demo catalog loaded" in log for log in logs) == 1, "\n".join(logs)
    assert not any("Traceback" in log for log in logs), "\n".join(logs)
    engine = create_engine(fresh_pg_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            rewritten = conn.execute(
                text("SELECT count(*) FROM assets WHERE updated_at <> created_at")
            ).scalar_one()
    finally:
        engine.dispose()
    assert len(versions) == 1
    assert rewritten == 0, "the demo catalog was imported twice"


def test_released_asset_goes_to_the_next_node(db_url: str, tmp_path: Path) -> None:
    catalog = [asset(n, size_mb=100.0 + n, priority=1 + n % 10) for n in range(20)]
    load_catalog(db_url, tmp_path, catalog, replication_target=1)
    env = {"DATABASE_URL": db_url, "REPLICATION_TARGET": "1"}

    server = PriorizerServer(tmp_path, env)
    with server, server.client() as client:
        taken = client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-a"})
        assert taken.status_code == 200, taken.text
        assert sorted(item["id"] for item in taken.json()) == sorted(a.id for a in catalog)

        nothing = client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-b"})
        assert nothing.status_code == 200, nothing.text
        assert nothing.json() == [], "with REPLICATION_TARGET=1 everything is already leased"

        released = client.post("/release", json={"asset_id": "asset-7", "node_id": "node-a"})
        assert released.status_code == 200, released.text
        again = client.post("/release", json={"asset_id": "asset-7", "node_id": "node-a"})
        assert again.status_code == 404, again.text

        next_node = client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-b"})
        assert next_node.status_code == 200, next_node.text
        assert [item["id"] for item in next_node.json()] == ["asset-7"]

        after = client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-c"})
        assert after.json() == [], "the released asset went to node-b only"

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT node_id, status FROM allocations WHERE asset_id = 'asset-7' ORDER BY id"
                )
            ).all()
            leases = conn.execute(
                text("SELECT leases, rank FROM assets WHERE id = 'asset-7'")
            ).one()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [("node-a", "released"), ("node-b", "allocated")]
    assert tuple(leases) == (1, None)
    assert server.stopped_cleanly, server.logs()
