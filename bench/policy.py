"""Benchmark: the CPU one `/allocate` costs in-process, by queue policy and catalog size.

Builds a SQLite catalog of N synthetic assets (bench/allocate.py's), then lets fresh nodes ask
for 1 GiB and 20 GiB, one request each, under each policy: the default (size penalty, smallest
file first) and the earlier one (`SIZE_PENALTY=0`, `FILL_ORDER=largest`). Prints CPU
milliseconds per request (median and 99th percentile) and assets handed out per request. The
cost must not grow with the catalog.

    python bench/policy.py --assets 10000,100000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from priorizer.allocation import service
from priorizer.config import Settings
from priorizer.db import Database
from priorizer.node.standing import CapLimits
from priorizer.queue.policy import queue_policy
from priorizer.startup import prepare

sys.path.insert(0, str(Path(__file__).resolve().parent))
from allocate import sqlite_catalog  # bench/ is not a package: its own folder on the path

POLICIES: dict[str, dict[str, Any]] = {
    "default": {},
    "earlier (no size penalty, largest first)": {"size_penalty": 0, "fill_order": "largest"},
}


def measure(url: str, overrides: dict[str, Any], free_gb: float, requests: int) -> dict[str, float]:
    settings = Settings.of(database_url=url, run_scheduler=False, **overrides)
    queue = queue_policy(settings)
    limits = CapLimits(settings.lease_cap_initial, settings.lease_cap_min, settings.lease_cap_max)
    prepare(settings)  # ranks recomputed for this policy, as a server does at start
    database = Database(url)
    cpu_ms, handed = [], []
    try:
        for n in range(requests):
            started = time.process_time()
            with database.write() as session:
                leases = service.allocate(
                    session,
                    node_id=f"bench-node-{free_gb}-{n}",
                    free_space_gb=free_gb,
                    queue=queue,
                    max_assets=settings.max_assets_per_allocation,
                    limits=limits,
                    lease_seconds=3600,
                    failed_retry_seconds=0,
                    now=datetime.now(UTC),
                )
            cpu_ms.append((time.process_time() - started) * 1000)
            handed.append(len(leases))
    finally:
        database.dispose()
    cpu_ms.sort()
    return {
        "p50": statistics.median(cpu_ms),
        "p99": cpu_ms[int(0.99 * (len(cpu_ms) - 1))],
        "assets": statistics.mean(handed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", default="10000,100000", help="catalog sizes, comma-separated")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    print(f"{'assets':>8} {'policy':<42} {'GiB':>4} {'CPU ms p50':>10} {'p99':>6} {'handed':>6}")
    for n in (int(x) for x in args.assets.split(",")):
        for name, overrides in POLICIES.items():
            for free_gb in (1.0, 20.0):
                with tempfile.TemporaryDirectory() as workdir:
                    url, _ = sqlite_catalog(n, Path(workdir))
                    m = measure(url, overrides, free_gb, args.requests)
                print(
                    f"{n:>8} {name:<42} {free_gb:>4.0f} {m['p50']:>10.2f} {m['p99']:>6.2f} "
                    f"{m['assets']:>6.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
