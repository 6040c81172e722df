"""Benchmark: one maintenance cycle on a large catalog, and /allocate latency while it runs.

A real server takes /allocate at a fixed rate while its own scheduler runs a cycle every
`--interval` seconds. Before it starts, some nodes are given leases that are already due, so
there are leases to expire and nodes to charge. Prints each cycle's duration and what it did
(from GET /maintenance/runs), and p50/p99 of the requests due during cycles next to those due
between them.

    python bench/maintenance.py --assets 1000000
    python bench/maintenance.py --assets 1000000 --database postgresql
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from allocate import (
    open_loop_samples,
    postgresql_catalog,
    report,
    serve,
    sqlite_catalog,
    stop,
    summarise,
)

from priorizer.allocation import service as allocation_service
from priorizer.config import Settings
from priorizer.db import Database
from priorizer.maintenance.service import cap_limits
from priorizer.queue.policy import queue_policy


def add_due_leases(url: str, nodes: int) -> int:
    """Leases for `nodes` nodes, handed out a day ago for an hour: all due now."""
    settings = Settings.of(database_url=url, run_scheduler=False)
    database = Database(url)
    then = datetime.now(UTC) - timedelta(days=1)
    count = 0
    try:
        for i in range(nodes):
            with database.write() as session:
                count += len(
                    allocation_service.allocate(
                        session,
                        node_id=f"due-{i}",
                        free_space_gb=50,
                        queue=queue_policy(settings),
                        max_assets=settings.max_assets_per_allocation,
                        limits=cap_limits(settings),
                        lease_seconds=3600,
                        failed_retry_seconds=settings.failed_retry_seconds,
                        now=then,
                    )
                )
    finally:
        database.dispose()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=1_000_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rate", type=float, default=100, help="offered /allocate per second")
    parser.add_argument("--due-nodes", type=int, default=400, help="nodes with due leases")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--interval", type=float, default=20, help="seconds between cycles")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="priorizer-bench-"))
    if args.database == "sqlite":
        url, _ = sqlite_catalog(args.assets, workdir)
    else:
        url, _ = postgresql_catalog(args.assets)
    due = add_due_leases(url, args.due_nodes)
    settings = Settings.of(database_url=url, run_scheduler=False)
    print(
        f"catalog: {args.assets:,} assets on {args.database}; {due:,} due leases on "
        f"{args.due_nodes} nodes; priority refresh of {settings.priority_refresh_limit:,} "
        f"assets per cycle; a cycle every {args.interval:g} s; /allocate at {args.rate:g}/s"
    )

    port, server = serve(url, workdir, AUTO_UPDATE_INTERVAL_MINUTES=str(args.interval / 60))
    try:
        open_loop_samples(port, args.rate, 5, args.connections)  # warm-up: caches, pools
        started = time.perf_counter()
        wall_start = time.time()
        samples = open_loop_samples(port, args.rate, args.duration, args.connections)
        elapsed = time.perf_counter() - started
        runs = httpx.get(f"http://127.0.0.1:{port}/maintenance/runs?limit=50").json()
    finally:
        stop(server)

    windows = []
    for run in reversed(runs):
        begin = datetime.fromisoformat(run["started_at"]).timestamp()
        if begin < wall_start or run["finished_at"] is None:
            continue
        end = datetime.fromisoformat(run["finished_at"]).timestamp()
        windows.append((begin, end))
        print(
            f"cycle {run['id']}: {run['duration_seconds']:.2f} s, {run['outcome']}; "
            + json.dumps({k: v for k, v in run["steps"].items() if v})
        )
    inside = lambda t: any(b <= t <= e for b, e in windows)  # noqa: E731
    during = [s for s in samples if inside(s[0])]
    outside = [s for s in samples if not inside(s[0])]
    busy = sum(e - b for b, e in windows)
    if during:
        report(f"/allocate during cycles ({len(during)})", summarise(during, busy))
    report(f"/allocate between them ({len(outside)})", summarise(outside, elapsed - busy))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
