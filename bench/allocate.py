"""Benchmark: POST /allocate through a real server over a catalog of N synthetic assets.

Prints p50/p99 latency and requests/s at C concurrent connections (wrk, closed loop: the
server is saturated), next to the same figures for a bare FastAPI endpoint of the same shape
(bench/bare_app.py) on this machine; then latency at a fixed offered rate (open loop).

    python bench/allocate.py --assets 100000
    python bench/allocate.py --assets 1000000 --database postgresql

Needs `wrk` (Debian: apt-get install wrk). Catalogs are cached under bench/.cache/ (SQLite).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from priorizer.app import queue_policy
from priorizer.catalog import service as catalog_service
from priorizer.catalog.service import NewAsset
from priorizer.config import Settings
from priorizer.db import Database
from priorizer.startup import prepare

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
BATCH = 50_000
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def synthetic_assets(start: int, stop: int, rng: random.Random) -> list[NewAsset]:
    """Sizes log-uniform from 1 MiB to 4 GiB, one in ten unknown; priorities 1-10."""
    return [
        NewAsset(
            id=f"bench-{i:08d}",
            url=f"https://data.example.org/bench/{i}.nc",
            name=f"file-{i}.nc",
            size_mb=None if rng.random() < 0.1 else round(2 ** rng.uniform(0, 12), 3),
            priority=rng.randint(1, 10),
            dataset_id=f"dataset-{i // 20}",
            format="NC",
        )
        for i in range(start, stop)
    ]


def build_catalog(url: str, n: int) -> float:
    settings = Settings.of(database_url=url, run_scheduler=False)
    prepare(settings)
    database = Database(url)
    rng = random.Random(20261129)
    started = time.perf_counter()
    now = datetime.now(UTC)
    for start in range(0, n, BATCH):
        with database.write() as session:
            catalog_service.upsert_assets(
                session,
                items=synthetic_assets(start, min(n, start + BATCH), rng),
                queue=queue_policy(settings),
                now=now,
            )
    database.dispose()
    return time.perf_counter() - started


def sqlite_catalog(n: int, workdir: Path) -> tuple[str, float]:
    CACHE.mkdir(exist_ok=True)
    cached = CACHE / f"catalog-{n}.sqlite3"
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
    target = workdir / "priorizer.sqlite3"
    shutil.copy(cached, target)
    return f"sqlite:///{target}", seconds


def postgresql_catalog(n: int) -> tuple[str, float]:
    """A fresh database cloned from a template catalog, built once (like bench/.cache/)."""
    template, name = f"priorizer_bench_template_{n}", f"priorizer_bench_{n}"
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


def open_loop_samples(
    port: int, rate: float, seconds: float, connections: int
) -> list[tuple[float, float, bool, int]]:
    """Requests at a fixed offered rate (not at saturation): request i is due at i / rate,
    and its latency counts from then, so queueing behind slow requests is measured too.
    One (wall-clock due time, latency s, succeeded, items) per request."""
    import asyncio

    async def run() -> list[tuple[float, float, bool, int]]:
        rng = random.Random()
        samples: list[tuple[float, float, bool, int]] = []
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
        ) as client:
            run_id = f"{rng.getrandbits(32):08x}"

            async def one(i: int, due: float, wall: float) -> None:
                body = {"free_space_gb": rng.randint(1, 20), "node_id": f"open-{run_id}-{i}"}
                response = await client.post("/allocate", json=body)
                ok = response.status_code == 200
                items = len(response.json()) if ok else 0
                samples.append((wall, time.perf_counter() - due, ok, items))

            start, wall_start = time.perf_counter(), time.time()
            tasks = []
            for i in range(int(rate * seconds)):
                due = start + i / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                tasks.append(asyncio.create_task(one(i, due, wall_start + i / rate)))
            await asyncio.gather(*tasks)
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


def open_loop(port: int, rate: float, seconds: int, connections: int) -> dict[str, float]:
    started = time.perf_counter()
    samples = open_loop_samples(port, rate, seconds, connections)
    return summarise(samples, time.perf_counter() - started)


def report(label: str, figures: dict[str, float]) -> None:
    print(
        f"{label:<28} {figures['rps']:>9.0f} req/s   p50 {figures['p50_ms']:6.2f} ms   "
        f"p90 {figures['p90_ms']:6.2f} ms   p99 {figures['p99_ms']:6.2f} ms   "
        f"errors {figures['errors']:.0f}   "
        f"items/req {figures['items'] / max(figures['requests'], 1):.1f}"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--duration", type=int, default=20, help="seconds of measured load")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument(
        "--rate", type=float, default=200, help="offered requests/s for the open-loop figures"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="priorizer-bench-"))
    if args.database == "sqlite":
        url, build_seconds = sqlite_catalog(args.assets, workdir)
    else:
        url, build_seconds = postgresql_catalog(args.assets)
    print(
        f"catalog: {args.assets:,} assets on {args.database}"
        + (f", built in {build_seconds:.1f} s" if build_seconds == build_seconds else " (cached)")
    )

    port, server = serve(url, workdir, PRIORIZER_WORKERS=str(args.workers))
    try:
        # The fixed rate first: the saturation run leaves checkpoint work behind it.
        open_loop(port, args.rate, 3, args.connections)  # warm-up: caches, connection pools
        steady = open_loop(port, args.rate, args.duration, args.connections)
        ours = measure(port, args)
        memory = rss_mb(server.pid)
    finally:
        stop(server)
    report(f"priorizer ({args.database}) at {args.rate:.0f}/s", steady)
    report(f"priorizer ({args.database}) saturated", ours)
    print(
        f"server RSS after the run: {memory:.0f} MiB; assets over target: "
        f"{check_rules(url, Settings().replication_target)}"
    )

    if not args.skip_bare:
        items = max(1, round(ours["items"] / max(ours["requests"], 1)))
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
                str(args.workers),
            ],
            {"BARE_ITEMS": str(items), "PYTHONPATH": str(HERE)},
            port,
            workdir / "bare.log",
        )
        try:
            yardstick = measure(port, args)
        finally:
            stop(bare)
        report(f"bare FastAPI ({items} items)", yardstick)
        print(f"throughput ratio priorizer / bare: {ours['rps'] / yardstick['rps']:.2f}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
