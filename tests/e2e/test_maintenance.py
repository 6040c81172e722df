"""The maintenance scheduler inside real `priorizer serve` processes, on SQLite and PostgreSQL.

Leases of 1.8 s (ALLOCATION_EXPIRY_HOURS=0.0005) and cycles every 1.2 s
(AUTO_UPDATE_INTERVAL_MINUTES=0.02) let the scheduler's work show within seconds:
- one server: leases a node stops renewing are expired by maintenance (not by a request), the
  renewed one stays, and the expired assets go to the next node;
- two servers on one database: every scheduled slot runs once, by one of them, on time.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from tests.conftest import create_pg_database, drop_pg_database, pg_skip_reason
from tests.support.priorizer_server import PriorizerServer, ServerDied

pytestmark = pytest.mark.slow

LEASE_SECONDS = 1.8
INTERVAL_SECONDS = 1.2
SLOT_ORIGIN = datetime(2020, 1, 1, tzinfo=UTC)  # as in priorizer.maintenance.service
HOST = socket.gethostname()
ERROR_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception): ")

FAST = {
    "REPLICATION_TARGET": "1",
    "ALLOCATION_EXPIRY_HOURS": "0.0005",  # 1.8 s
    "AUTO_UPDATE_INTERVAL_MINUTES": "0.02",  # 1.2 s
}

ASSETS: list[dict[str, Any]] = [
    {
        "id": f"m-{n}",
        "url": f"https://data.example.org/maint/{n}.csv",
        "name": f"{n}.csv",
        "size_mb": 10.0 * n,
        "priority": 10 - n,
        "dataset_id": "maint",
        "format": "CSV",
    }
    for n in range(1, 6)
]
EVERY_ID = sorted(a["id"] for a in ASSETS)
KEPT = "m-3"  # the lease node-a keeps renewing: neither the first nor the last in the queue
DROPPED = sorted(set(EVERY_ID) - {KEPT})


# --- helpers ---------------------------------------------------------------------------------


def seed_directory(path: Path) -> Path:
    """A DATA_DIRECTORY whose ckan_data.json the first server start imports."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "ckan_data.json").write_text(json.dumps(ASSETS, indent=1), encoding="utf-8")
    return path


def slot_of(moment: datetime) -> int:
    return int((moment - SLOT_ORIGIN).total_seconds() // INTERVAL_SECONDS)


def slot_start(slot: int) -> datetime:
    return SLOT_ORIGIN + timedelta(seconds=slot * INTERVAL_SECONDS)


def on_grid(moment: datetime) -> float:
    """How far (s) a moment is from the nearest slot start."""
    offset = (moment - SLOT_ORIGIN).total_seconds() % INTERVAL_SECONDS
    return min(offset, INTERVAL_SECONDS - offset)


def utc(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def runner_of(server: PriorizerServer) -> str:
    assert server.process is not None
    return f"{HOST}:{server.process.pid}"


def ok_json(response: httpx.Response) -> Any:
    assert response.status_code == 200, f"{response.request.url}: {response.text}"
    return response.json()


def asset_ids(client: httpx.Client, **params: str) -> list[str]:
    page = ok_json(client.get("/allocations", params={**params, "limit": "1000"}))
    return sorted(item["asset_id"] for item in page["items"])


def no_traceback(*servers: PriorizerServer) -> None:
    for server in servers:
        logs = server.logs()
        assert "Traceback" not in logs, logs
        assert "maintenance cycle failed" not in logs, logs


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    reason = pg_skip_reason()
    if reason:
        pytest.skip(f"POSTGRESQL NOT TESTED: {reason}")
    url = create_pg_database("priorizer_maint")
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The DATABASE_URL to give servers ({} = SQLite in the DATA_DIRECTORY)."""
    if request.param == "sqlite":
        return {}
    return {"DATABASE_URL": request.getfixturevalue("fresh_pg_url")}


# --- one server: the scheduler expires what is not renewed -----------------------------------


def test_scheduler_expires_unrenewed_leases_and_keeps_the_renewed_one(
    database_env: dict[str, str], tmp_path: Path
) -> None:
    data = seed_directory(tmp_path / "data")
    env = {**FAST, **database_env, "DATA_DIRECTORY": str(data)}

    server = PriorizerServer(tmp_path, env)
    with server, server.client(timeout=10.0) as client:
        taken = ok_json(client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-a"}))
        assert sorted(item["id"] for item in taken) == EVERY_ID
        expires_at = min(utc(item["expires_at"]) for item in taken)
        leased_at = time.monotonic()

        # From now on no /allocate (which would expire due leases itself): only /renew of one
        # lease, and reads. Whatever expires the others is the scheduler.
        observations: list[tuple[datetime, int]] = []
        last_renewal = 0.0
        dropped_after = None
        deadline = leased_at + 12
        while time.monotonic() < deadline:
            if time.monotonic() - last_renewal >= 0.5:
                renewal = ok_json(
                    client.post("/renew", json={"node_id": "node-a", "asset_ids": [KEPT]})
                )
                assert renewal["renewed"] == 1 and renewal["not_renewed"] == [], renewal
                last_renewal = time.monotonic()
            sent = datetime.now(UTC)
            active = ok_json(client.get("/status"))["active_allocations"]
            observations.append((sent, active))
            if active == 1:
                dropped_after = time.monotonic() - leased_at
                break
            time.sleep(0.1)
        assert dropped_after is not None, f"leases never expired: {observations[-5:]}"
        # Not early: while the leases ran, all five were open.
        early = [(at, n) for at, n in observations if at < expires_at - timedelta(seconds=0.05)]
        assert early and all(n == len(EVERY_ID) for _, n in early), observations
        # And soon: at the first cycle past the expiry (plus slack for a slow machine).
        assert dropped_after < LEASE_SECONDS + 2 * INTERVAL_SECONDS + 2.0, dropped_after

        # It was maintenance: its runs account for exactly the four expirations (once the run
        # that closed them has finished: /status may have seen its first step commit).
        runs: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            renewal = ok_json(
                client.post("/renew", json={"node_id": "node-a", "asset_ids": [KEPT]})
            )
            assert renewal["renewed"] == 1, renewal
            runs = ok_json(client.get("/maintenance/runs", params={"limit": 1000}))
            if any(r["outcome"] == "ok" and r["steps"]["expired_leases"] for r in runs):
                break
            time.sleep(0.2)
        assert runs, "no maintenance run recorded"
        assert [r["id"] for r in runs] == sorted((r["id"] for r in runs), reverse=True)
        assert {r["runner"] for r in runs} == {runner_of(server)}, runs
        slots = [r["slot"] for r in runs]
        assert None not in slots and len(set(slots)) == len(slots), slots
        for run in runs:
            assert slot_of(utc(run["started_at"])) == run["slot"], run
            assert run["outcome"] in ("ok", "running"), run
        done = [r for r in runs if r["outcome"] == "ok"]
        assert sum(r["steps"]["expired_leases"] for r in done) == len(DROPPED), done
        expiring = [r for r in done if r["steps"]["expired_leases"]]
        assert all(utc(r["started_at"]) >= expires_at for r in expiring), (expires_at, expiring)
        # The same cycles charged node-a for its expirations, once: its lease cap halves.
        assert sum(r["steps"]["nodes_charged_for_expirations"] for r in done) == 1, done
        node = ok_json(client.get("/nodes/node-a"))
        assert (node["expirations"], node["lease_cap"]) == (len(DROPPED), 100), node

        assert asset_ids(client, node_id="node-a", status="expired") == DROPPED
        assert asset_ids(client, node_id="node-a", status="allocated") == [KEPT]
        status = ok_json(client.get("/status"))
        last = status["last_maintenance"]
        assert last["outcome"] == "ok" and last["runner"] == runner_of(server), last
        assert last["duration_seconds"] is not None and last["duration_seconds"] >= 0, last
        assert set(last["steps"]) >= {"expired_leases", "priorities_redrawn"}, last

        # /metrics counted it: the scheduler's expirations, its cycles, and the leases granted.
        counted = scrape(client)
        assert counted[("priorizer_expirations_total", ())] == len(DROPPED), counted
        assert counted[("priorizer_allocations_total", ())] == len(EVERY_ID), counted
        ok_cycles = counted[("priorizer_maintenance_cycles_total", (("outcome", "ok"),))]
        assert ok_cycles >= len(done), counted

        # The next node gets exactly what node-a let go, and not the lease it kept.
        second = ok_json(client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-b"}))
        assert sorted(item["id"] for item in second) == DROPPED
        assert asset_ids(client, node_id="node-a", status="allocated") == [KEPT]
        assert ok_json(client.get("/status"))["active_allocations"] == len(EVERY_ID)
        after = scrape(client)
        assert after[("priorizer_allocations_total", ())] == len(EVERY_ID) + len(DROPPED)
        assert after[("priorizer_open_leases", ())] == len(EVERY_ID)

    assert server.stopped_cleanly, server.logs()
    no_traceback(server)


def scrape(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics, parsed by the Prometheus client's own parser: {(sample, labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


# --- two servers on one database: each slot runs once ----------------------------------------


def test_two_schedulers_on_one_database_run_each_slot_once(
    database_env: dict[str, str], tmp_path: Path
) -> None:
    """Both servers fire at the same instants (slots aligned on one origin); of the two, one
    runs the slot (the runner lock and the unique slot), none is lost and none runs twice."""
    data = seed_directory(tmp_path / "shared-data")
    # On SQLite both use the same file (DATA_DIRECTORY/priorizer.sqlite3).
    env = {**FAST, **database_env, "DATA_DIRECTORY": str(data)}
    servers = [PriorizerServer(tmp_path, env, name=f"server-{x}") for x in "ab"]

    with ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
            server.start()  # one after the other: the first start imports the seed file
        window_start = datetime.now(UTC)
        # Some real work for the cycles: leases that only maintenance will expire.
        with servers[0].client(timeout=10.0) as client:
            taken = ok_json(client.post("/allocate", json={"free_space_gb": 10, "node_id": "n"}))
        assert sorted(item["id"] for item in taken) == EVERY_ID
        time.sleep(8.0)
        window_end = datetime.now(UTC)
        next_runs = []
        for server in servers:
            with server.client(timeout=10.0) as client:
                health = client.get("/health")
                assert health.status_code == 200, (server.name, health.text)
                next_runs.append(utc(ok_json(client.get("/status"))["next_auto_update"]))
        # Both fire at the same instants: whole intervals from the origin, not from their start.
        for moment in next_runs:
            assert abs(on_grid(moment)) < 0.001, (next_runs, [on_grid(m) for m in next_runs])
        gap = abs((next_runs[1] - next_runs[0]).total_seconds())
        assert gap < 0.001 or abs(gap - INTERVAL_SECONDS) < 0.001, next_runs
        for server in servers:
            server.stop()
    runners = {runner_of(server): server for server in servers}
    for server in servers:
        assert server.stopped_cleanly, server.logs()
    no_traceback(*servers)

    url = env.get("DATABASE_URL") or f"sqlite:///{data / 'priorizer.sqlite3'}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            runs = conn.execute(
                text(
                    "SELECT id, slot, runner, started_at, outcome, steps FROM maintenance_runs "
                    "ORDER BY started_at"
                )
            ).all()
            open_leases = conn.execute(
                text("SELECT count(*) FROM allocations WHERE status = 'allocated'")
            ).scalar_one()
    finally:
        engine.dispose()
    logs = "\n".join(server.logs() for server in servers)
    table = "\n".join(str(tuple(run)) for run in runs)
    context = f"runs:\n{table}\n{logs}"

    def started(run: Any) -> datetime:
        value = run.started_at
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    assert runs, context
    slots = [run.slot for run in runs]
    assert None not in slots, context
    duplicates = [slot for slot, n in Counter(slots).items() if n > 1]
    assert not duplicates, f"slots run twice: {duplicates}\n{context}"
    assert {run.runner for run in runs} <= set(runners), context
    for run in runs:
        assert run.outcome == "ok", context
        # On time: in its own slot, shortly after the slot began (both fire at that instant).
        lateness = (started(run) - slot_start(run.slot)).total_seconds()
        assert 0 <= lateness < INTERVAL_SECONDS / 2, (run, lateness, context)
    for earlier, later in pairwise(runs):
        gap = (started(later) - started(earlier)).total_seconds()
        assert gap >= INTERVAL_SECONDS / 2, (earlier, later, context)

    # Not zero either: every slot that began and ended inside the window ran.
    expected = set(range(slot_of(window_start) + 1, slot_of(window_end)))
    assert len(expected) >= 5, (window_start, window_end)
    missing = sorted(expected - set(slots))
    assert not missing, f"slots never run: {missing} of {sorted(expected)}\n{context}"

    # The five leases expired once each, by maintenance.
    steps = [json.loads(r.steps) if isinstance(r.steps, str) else r.steps for r in runs]
    expired = sum(step["expired_leases"] for step in steps)
    assert expired == len(EVERY_ID), context
    assert open_leases == 0, context

    print(f"\nruns by process: {Counter(run.runner for run in runs)}")


# --- two servers started together on one SQLite file ----------------------------------------


def test_two_servers_starting_together_on_one_sqlite_file_migrate_and_import_once(
    tmp_path: Path,
) -> None:
    """Three `priorizer serve` started at the same moment on a new SQLite DATA_DIRECTORY all
    come up, the schema is created once and the seed file imported once (as on PostgreSQL,
    where start-up takes an advisory lock: see test_concurrency). A collision is a matter of
    timing, so up to six fresh directories are tried; the first bad start ends the test."""
    failures = []
    for attempt in range(6):
        data = seed_directory(tmp_path / f"try-{attempt}" / "data")
        env = {**FAST, "DATA_DIRECTORY": str(data)}
        servers = [
            PriorizerServer(tmp_path / f"try-{attempt}", env, name=f"server-{x}") for x in "abc"
        ]
        died = []
        with ExitStack() as stack:
            for server in servers:
                stack.callback(server.stop)
                server.launch()
            for server in servers:
                try:
                    server.wait_healthy()
                except ServerDied as error:
                    died.append(str(error))
            logs = [server.logs() for server in servers]
        imports = sum("first start: imported" in log for log in logs)
        if died or imports != 1:
            failures.append((attempt, imports, died))
            break
    if failures:
        attempt, imports, died = failures[0]
        errors = sorted(
            {line for text in died for line in text.splitlines() if ERROR_LINE.match(line)}
        )
        pytest.fail(
            f"attempt {attempt + 1}: {len(died)} of 3 servers died at start-up, seed file "
            f"imported {imports} times; errors: {errors}\n\n" + "\n\n".join(died)[:6000]
        )
