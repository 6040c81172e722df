"""Benchmark: POST /allocate through real servers, against a bare FastAPI endpoint of the
same shape (bench/bare_app.py) measured in the same run.

For each catalog size (100k, 1M synthetic assets, written by bulk SQL and cached) and each
backend (SQLite with 1 server process; PostgreSQL with 2 and 4 server processes sharing one
database), on a fresh copy of the catalog:
- p99 at a fixed offered rate (`--rate`, open loop: latency counted from when each request
  was due), with a light asyncio generator;
- saturated /allocate: `wrk`, 16 connections, a new node each request;
- at 1M assets (SQLite, PostgreSQL x2): p99 at `--maintenance-rate` of the requests due while
  the server's own maintenance cycle ran, and the longest wait (the longest pause);
- errors, and assets over the replication target after the run.
Prints each measurement, then the issue's table (medians over `--runs`).

    python bench/allocate.py                                  # the whole table, 3 runs
    python bench/allocate.py --sizes 100k --backends sqlite --runs 1 --duration 5

Needs `wrk` (Debian: apt-get install wrk) and, for PostgreSQL, BENCH_PG_URL (a database on a
server where it may create others). Catalogs are cached: SQLite files under bench/.cache/,
PostgreSQL template databases, both named by size and schema revision.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from priorizer.allocation import claims as allocation_claims
from priorizer.config import Settings
from priorizer.db import Database
from priorizer.queue.policy import queue_policy
from priorizer.startup import prepare, schema_head

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
BATCH = 50_000
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# One row per asset, computed by the database from its number i: sizes log-uniform from 1 MiB
# to 4 GiB, one in ten unknown, priorities 1-10 (from multiplicative hashes of i, so every
# build is the same). Rank and budget come after, from the policy (`recompute_ranks`).
_ASSET_COLUMNS = (
    "id, url, name, size_mb, format, dataset_id, base_priority, priority, manual_priority, "
    "url_key, state, created_at, updated_at, copies, disputed_copies, leases, budget_mb"
)
_ASSET_VALUES = (
    "'bench-' || {pad}, 'https://data.example.org/bench/' || i || '.nc', "
    "'file-' || i || '.nc', "
    "CASE WHEN (i * 2654435761) % 1000003 % 10 = 0 THEN NULL "
    "ELSE {size} END, 'NC', 'dataset-' || (i / 20), 1 + (i * 69069 + 1) % 1000037 % 10, "
    "1 + (i * 69069 + 1) % 1000037 % 10, 1 + (i * 69069 + 1) % 1000037 % 10, "
    "'bench-' || {pad}, 'active', :now, :now, 0, 0, 0, 0"
)
_GENERATE = {
    "sqlite": (
        "WITH RECURSIVE s(i) AS (SELECT :start UNION ALL SELECT i + 1 FROM s WHERE i < :stop - 1) "
        f"INSERT INTO assets ({_ASSET_COLUMNS}) SELECT "
        + _ASSET_VALUES.format(
            pad="printf('%08d', i)",
            size="round(pow(2, 12.0 * ((i * 40503 + 12345) % 1000033) / 1000033), 3)",
        )
        + " FROM s"
    ),
    "postgresql": (
        f"INSERT INTO assets ({_ASSET_COLUMNS}) SELECT "
        + _ASSET_VALUES.format(
            pad="lpad(i::text, 8, '0')",
            size="round(pow(2, 12.0 * ((i * 40503 + 12345) % 1000033) / 1000033)::numeric, 3)"
            "::float8",
        )
        + " FROM generate_series(CAST(:start AS bigint), CAST(:stop AS bigint) - 1) AS g(i)"
    ),
}


def build_catalog(url: str, n: int) -> float:
    """N synthetic assets written by bulk SQL (seconds, not minutes, for a million)."""
    settings = Settings.of(database_url=url, run_scheduler=False)
    prepare(settings)
    queue = queue_policy(settings)
    database = Database(url)
    started = time.perf_counter()
    dialect = "sqlite" if database.is_sqlite else "postgresql"
    now = datetime.now(UTC).replace(microsecond=0)
    stamp = now.replace(tzinfo=None).isoformat(" ") if database.is_sqlite else now
    for start in range(0, n, BATCH):
        with database.write() as session:
            bounds = {"start": start, "stop": min(n, start + BATCH), "now": stamp}
            session.execute(text(_GENERATE[dialect]), bounds)
    with database.write() as session:
        allocation_claims.recompute_ranks(
            session, policy=queue, unknown_size_mb=queue.unknown_size_mb
        )
    database.dispose()
    return time.perf_counter() - started


def catalog_tag(n: int) -> str:
    """Cached catalogs are named by size and schema revision: a migration makes new ones."""
    return f"{n}_{schema_head(Settings.of(run_scheduler=False))}"


def sqlite_catalog(n: int, workdir: Path) -> tuple[str, float]:
    CACHE.mkdir(exist_ok=True)
    cached = CACHE / f"catalog-{catalog_tag(n)}.sqlite3"
    seconds = float("nan")
    if not cached.exists():
        partial = workdir / "build.sqlite3"
        seconds = build_catalog(f"sqlite:///{partial}", n)
        # A copy of the main file alone could miss pages still in the WAL: VACUUM INTO writes
        # one consistent, self-contained file.
        engine = create_engine(f"sqlite:///{partial}")
        with engine.connect() as conn:
            conn.exec_driver_sql(f"VACUUM INTO '{cached}'")
        engine.dispose()
        partial.unlink()
    target = workdir / "priorizer.sqlite3"
    for stale in workdir.glob("priorizer.sqlite3*"):
        stale.unlink()
    shutil.copy(cached, target)
    return f"sqlite:///{target}", seconds


def postgresql_catalog(n: int, *, name: str = "") -> tuple[str, float]:
    """A fresh database cloned from a template catalog, built once (like bench/.cache/)."""
    tag = catalog_tag(n).replace("-", "_")
    template, name = f"priorizer_bench_t{tag}", name or f"priorizer_bench_{n}"
    base = PG_ADMIN.rsplit("/", 1)[0]
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    seconds = float("nan")
    with admin.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": template}
        ).first()
        if not exists:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{template}_partial" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{template}_partial"'))
            seconds = build_catalog(f"{base}/{template}_partial", n)
            built = create_engine(f"{base}/{template}_partial", isolation_level="AUTOCOMMIT")
            with built.connect() as built_conn:
                built_conn.execute(text("VACUUM ANALYZE"))
            built.dispose()
            conn.execute(text(f'ALTER DATABASE "{template}_partial" RENAME TO "{template}"'))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    return f"{base}/{name}", seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=out, stderr=out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server did not become healthy: {log.read_text()[-2000:]}")


def serve(url: str, workdir: Path, **env: str) -> tuple[int, subprocess.Popen[bytes]]:
    """A real `priorizer serve` over the database at `url`, healthy; its port and process."""
    port = free_port()
    settings = {
        "DATABASE_URL": url,
        "PRIORIZER_PORT": str(port),
        "DATA_DIRECTORY": str(workdir),
        "LOG_LEVEL": "WARNING",
        # One load generator is one client address sending far more than any node would.
        "RATE_LIMIT_PER_NODE": "100000000/minute",
        "RATE_LIMIT_PER_ADDRESS": "100000000/minute",
        # ... and its fleet of new nodes shares that one address (open mode caps their leases).
        "UNPROVEN_LEASES_PER_ADDRESS": "0",
        **env,
    }
    priorizer = str(Path(sys.executable).parent / "priorizer")
    return port, start([priorizer, "serve"], settings, port, workdir / "server.log")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def wrk(port: int, seconds: int, connections: int) -> dict[str, float]:
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(HERE / "wrk_allocate.lua"),
        f"http://127.0.0.1:{port}",
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    return {key: float(value) for key, value in (pair.split("=") for pair in line.split()[1:])}


def measure(port: int, args: argparse.Namespace) -> dict[str, float]:
    wrk(port, 3, args.connections)  # warm-up: caches, connection pools
    return wrk(port, args.duration, args.connections)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    return status, await reader.readexactly(length)


def open_loop_samples(
    port: int, rate: float, seconds: float, connections: int
) -> list[tuple[float, float, bool, int]]:
    """Requests at a fixed offered rate (not at saturation): request i is due at i / rate,
    and its latency counts from then, so queueing behind slow requests is measured too (a
    request waits for one of `connections` kept-alive connections when all are busy).
    Plain HTTP/1.1 over asyncio streams: tens of microseconds of CPU a request, so the
    generator takes little from the server on a small machine. One (wall-clock due time,
    latency s, succeeded, items) per request."""

    async def run() -> list[tuple[float, float, bool, int]]:
        rng = random.Random()
        run_id = f"{rng.getrandbits(32):08x}"
        samples: list[tuple[float, float, bool, int]] = []
        free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        for _ in range(connections):
            free.put_nowait(await asyncio.open_connection("127.0.0.1", port))

        async def one(i: int, due: float, wall: float) -> None:
            body = b'{"free_space_gb": %d, "node_id": "open-%s-%d"}' % (
                rng.randint(1, 20),
                run_id.encode(),
                i,
            )
            request = (
                b"POST /allocate HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            reader, writer = await free.get()
            try:
                status, answer = await _exchange(reader, writer, request)
            except (OSError, asyncio.IncompleteReadError, ValueError, AttributeError):
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                status, answer = 0, b""
            free.put_nowait((reader, writer))
            ok = status == 200
            items = answer.count(b'"allocation_id"') if ok else 0
            samples.append((wall, time.perf_counter() - due, ok, items))

        begin, wall_start = time.perf_counter(), time.time()
        tasks = []
        for i in range(int(rate * seconds)):
            due = begin + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i, due, wall_start + i / rate)))
        await asyncio.gather(*tasks)
        while not free.empty():
            free.get_nowait()[1].close()
        return samples

    return asyncio.run(run())


def summarise(samples: list[tuple[float, float, bool, int]], elapsed: float) -> dict[str, float]:
    latencies = sorted(latency for _, latency, _, _ in samples)
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {
        "requests": len(latencies),
        "errors": sum(1 for _, _, ok, _ in samples if not ok),
        "items": sum(items for *_, items in samples),
        "rps": len(latencies) / elapsed,
        "p50_ms": pick(0.50),
        "p90_ms": pick(0.90),
        "p99_ms": pick(0.99),
        "max_ms": latencies[-1] * 1000,
    }


def open_loop(port: int, rate: float, seconds: float, connections: int) -> dict[str, float]:
    started = time.perf_counter()
    samples = open_loop_samples(port, rate, seconds, connections)
    return summarise(samples, time.perf_counter() - started)


def report(label: str, figures: dict[str, float]) -> None:
    print(
        f"{label:<40} {figures['rps']:>7.0f} req/s  p50 {figures['p50_ms']:6.2f}  "
        f"p90 {figures['p90_ms']:6.2f}  p99 {figures['p99_ms']:7.2f}  "
        f"max {figures['max_ms']:7.1f} ms"
        f"  errors {figures['errors']:.0f}  items/req "
        f"{figures['items'] / max(figures['requests'], 1):.1f}",
        flush=True,
    )


def check_rules(url: str, target: int) -> int:
    """Assets over the replication target after the run (must be 0)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        over = conn.execute(
            text("SELECT count(*) FROM assets WHERE copies - disputed_copies + leases > :t"),
            {"t": target},
        ).scalar_one()
    engine.dispose()
    return int(over)


SIZES = {"100k": 100_000, "1M": 1_000_000}
# The table's columns: (database, server processes sharing it).
BACKENDS = {"sqlite": ("sqlite", 1), "pg2": ("postgresql", 2), "pg4": ("postgresql", 4)}
BACKEND_TITLES = {
    "sqlite": "SQLite, 1 process",
    "pg2": "PostgreSQL, 2 processes",
    "pg4": "PostgreSQL, 4 processes",
}
# The rows that the maintenance cycle's figure is taken for (the issue's table).
MAINTENANCE_BACKENDS = ("sqlite", "pg2")


def catalog(backend: str, n: int, workdir: Path) -> str:
    database, _ = BACKENDS[backend]
    url, seconds = sqlite_catalog(n, workdir) if database == "sqlite" else postgresql_catalog(n)
    if seconds == seconds:
        print(f"  built the {n:,}-asset {database} catalog in {seconds:.1f} s", flush=True)
    return url


def analyze(url: str) -> None:
    """PostgreSQL: statistics of the tables as the warm-up left them, as autovacuum takes
    them within a minute on a live database. A fresh copy of the catalog has none of its
    nodes and leases in its statistics, and each server connection keeps the plan of its
    foreign-key checks from then (a scan of `nodes` for every lease opened) until they change."""
    if url.startswith("postgresql"):
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
        engine.dispose()


def quiet_server(url: str, workdir: Path, workers: int, **env: str) -> tuple[int, Any]:
    # The maintenance cycle runs only in its own phase: elsewhere, whether one falls in the
    # measured seconds would decide the figure.
    settings = {"PRIORIZER_WORKERS": str(workers), "PRIORIZER_RUN_SCHEDULER": "false", **env}
    return serve(url, workdir, **settings)


def measure_priorizer(
    backend: str, n: int, args: argparse.Namespace, workdir: Path
) -> dict[str, dict[str, float]]:
    """Fixed rate, then saturation, on a fresh copy of the catalog."""
    url = catalog(backend, n, workdir)
    port, server = quiet_server(url, workdir, BACKENDS[backend][1], **args.server_env)
    try:
        # The fixed rate first: the saturation run leaves checkpoint work behind it.
        open_loop(port, args.rate, 3, args.connections)  # warm-up: caches, connection pools
        analyze(url)
        steady = open_loop(port, args.rate, args.duration, args.connections)
        saturated = measure(port, args)
    finally:
        stop(server)
    over = check_rules(url, Settings().replication_target)
    return {"steady": steady, "saturated": saturated, "rules": {"over_target": over}}


def measure_maintenance(
    backend: str, n: int, args: argparse.Namespace, workdir: Path
) -> dict[str, float]:
    """p99 at `--maintenance-rate` of the requests due while a maintenance cycle ran (the
    server's own scheduler, a cycle every `--interval` s, after `--due-nodes` nodes were
    given leases already due). `max_ms` is the longest any request waited: the longest pause."""
    from maintenance import add_due_leases  # bench/maintenance.py, which imports this module

    url = catalog(backend, n, workdir)
    add_due_leases(url, args.due_nodes)
    interval = str(args.interval / 60)
    port, server = serve(
        url,
        workdir,
        PRIORIZER_WORKERS=str(BACKENDS[backend][1]),
        AUTO_UPDATE_INTERVAL_MINUTES=interval,
        **args.server_env,
    )
    try:
        open_loop(port, args.maintenance_rate, 3, args.connections)
        analyze(url)
        wall_start = time.time()
        samples = open_loop_samples(
            port, args.maintenance_rate, args.maintenance_seconds, args.connections
        )
        # A cycle still running when the load ends counts too: wait for its end.
        deadline = time.monotonic() + 300
        while True:
            runs = httpx.get(f"http://127.0.0.1:{port}/maintenance/runs?limit=50").json()
            if all(run["finished_at"] for run in runs) or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        stop(server)
    windows = [
        (
            datetime.fromisoformat(run["started_at"]).timestamp(),
            datetime.fromisoformat(run["finished_at"]).timestamp(),
        )
        for run in runs
        if run["finished_at"] is not None
        and datetime.fromisoformat(run["started_at"]).timestamp() >= wall_start
    ]
    during = [s for s in samples if any(b <= s[0] <= e for b, e in windows)]
    if not during:
        print("  no maintenance cycle ran during the load: raise --maintenance-seconds")
        during = samples  # the figure then says what the load alone gave
    figures = summarise(during, sum(e - b for b, e in windows) or args.maintenance_seconds)
    figures["cycles"] = len(windows)
    figures["cycle_s"] = max((e - b for b, e in windows), default=float("nan"))
    figures["all_errors"] = sum(1 for s in samples if not s[2])
    return figures


def measure_bare(workers: int, items: int, args: argparse.Namespace, workdir: Path) -> Any:
    port = free_port()
    bare = start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--workers",
            str(workers),
        ],
        {"BARE_ITEMS": str(items), "PYTHONPATH": str(HERE)},
        port,
        workdir / "bare.log",
    )
    try:
        open_loop(port, args.rate, 2, args.connections)
        steady = open_loop(port, args.rate, args.duration, args.connections)
        slow = open_loop(port, args.maintenance_rate, args.duration, args.connections)
        saturated = measure(port, args)
    finally:
        stop(bare)
    return {"steady": steady, "slow": slow, "saturated": saturated}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float], fmt: str) -> str:
    """The median, and the range when there were several runs."""
    if not values:
        return "-"
    text_ = format(median(values), fmt)
    if len(values) > 1:
        text_ += f" ({format(min(values), fmt)}-{format(max(values), fmt)})"
    return text_


def _versus(runs: list[Any], phase: str, bare_phase: str, key: str, fmt: str) -> str:
    if not runs or phase not in runs[0]:
        return "-"
    ours = spread([r[phase][key] for r in runs], fmt)
    return f"{ours} vs {spread([r['bare'][bare_phase][key] for r in runs], fmt)}"


def _ratio(runs: list[Any]) -> str:
    if not runs:
        return "-"
    ratios = [r["saturated"]["rps"] / r["bare"]["saturated"]["rps"] for r in runs]
    return f"{_versus(runs, 'saturated', 'saturated', 'rps', '.0f')} = {spread(ratios, '.2f')}x"


def _maintenance(runs: list[Any]) -> str:
    if not runs or "maintenance" not in runs[0]:
        return "-"
    longest = spread([r["maintenance"]["max_ms"] for r in runs], ".0f")
    return f"{_versus(runs, 'maintenance', 'slow', 'p99_ms', '.1f')}; longest {longest}"


def _errors(runs: list[Any]) -> str:
    if not runs:
        return "-"
    errors = sum(
        r["saturated"]["errors"]
        + r["steady"]["errors"]
        + r.get("maintenance", {}).get("all_errors", 0)
        for r in runs
    )
    asked = sum(r["saturated"]["requests"] + r["steady"]["requests"] for r in runs)
    return f"{errors:.0f} of {asked:.0f}; {sum(r['rules']['over_target'] for r in runs)}"


def print_table(results: dict[tuple[str, str], list[Any]], args: argparse.Namespace) -> None:
    """The issue's table: each cell priorizer's figure, then the bare endpoint's of the same
    run, medians over runs (the range in brackets)."""
    backends = [b for b in BACKENDS if b in args.backends]
    print("\n| | " + " | ".join(BACKEND_TITLES[b] for b in backends) + " |")
    print("| --- " * (len(backends) + 1) + "|")
    rows: list[tuple[str, str, Any]] = []
    for size in args.sizes:
        rows.append((f"saturated /allocate req/s vs bare, {size} assets", size, _ratio))
        rows.append(
            (
                f"saturated p99 ms vs bare, {size}",
                size,
                lambda runs: _versus(runs, "saturated", "saturated", "p99_ms", ".0f"),
            )
        )
    for size in args.sizes:
        rows.append(
            (
                f"p99 ms at {args.rate:g} req/s (open loop) vs bare, {size}",
                size,
                lambda runs: _versus(runs, "steady", "steady", "p99_ms", ".1f"),
            )
        )
    for size in args.sizes:
        label = f"p99 ms at {args.maintenance_rate:g} req/s during maintenance vs bare, {size}"
        rows.append((label, size, _maintenance))
    for size in args.sizes:
        rows.append((f"errors of requests; assets over target, {size}", size, _errors))
    for label, size, cell in rows:
        cells = [cell(results.get((size, backend), [])) for backend in backends]
        print(f"| {label} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k,1M", help="catalog sizes: 100k, 1M")
    parser.add_argument(
        "--backends", default="sqlite,pg2,pg4", help="sqlite, pg2, pg4 (PostgreSQL, N processes)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=15, help="seconds of each measured load")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200, help="offered req/s, open loop")
    parser.add_argument("--maintenance-rate", type=float, default=100)
    parser.add_argument("--maintenance-seconds", type=float, default=45)
    parser.add_argument("--interval", type=float, default=20, help="s between maintenance cycles")
    parser.add_argument("--due-nodes", type=int, default=400, help="nodes with due leases")
    parser.add_argument(
        "--maintenance-sizes", default="1M", help="sizes the maintenance figure is taken at"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the servers measured (repeatable): compare directions in one run",
    )
    args = parser.parse_args()
    args.server_env = dict(pair.split("=", 1) for pair in args.server_env)
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    maintenance_sizes = [s.strip() for s in args.maintenance_sizes.split(",") if s.strip()]
    unknown = set(args.sizes) - SIZES.keys() | set(args.backends) - BACKENDS.keys()
    if unknown:
        raise SystemExit(f"unknown sizes or backends: {', '.join(sorted(unknown))}")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="priorizer-bench-"))
    results: dict[tuple[str, str], list[Any]] = {}
    try:
        for run in range(args.runs):
            bare_cache: dict[tuple[int, int], Any] = {}
            for size in args.sizes:
                for backend in [b for b in BACKENDS if b in args.backends]:
                    print(f"run {run + 1}: {size} assets, {BACKEND_TITLES[backend]}", flush=True)
                    figures: dict[str, Any] = measure_priorizer(backend, SIZES[size], args, workdir)
                    report("  priorizer at a fixed rate", figures["steady"])
                    report("  priorizer saturated", figures["saturated"])
                    if size in maintenance_sizes and backend in MAINTENANCE_BACKENDS:
                        figures["maintenance"] = measure_maintenance(
                            backend, SIZES[size], args, workdir
                        )
                        report("  priorizer during maintenance", figures["maintenance"])
                        print(
                            f"  {figures['maintenance']['cycles']:.0f} cycles, the longest "
                            f"{figures['maintenance']['cycle_s']:.1f} s",
                            flush=True,
                        )
                    saturated = figures["saturated"]
                    items = max(1, round(saturated["items"] / max(saturated["requests"], 1)))
                    key = (BACKENDS[backend][1], items)
                    if key not in bare_cache:
                        bare_cache[key] = measure_bare(*key, args, workdir)
                    figures["bare"] = bare_cache[key]
                    report(
                        f"  bare ({key[0]} processes, {items} items) fixed",
                        figures["bare"]["steady"],
                    )
                    report(
                        f"  bare ({key[0]} processes, {items} items) saturated",
                        figures["bare"]["saturated"],
                    )
                    results.setdefault((size, backend), []).append(figures)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(results, args)


if __name__ == "__main__":
    main()
