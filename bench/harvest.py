"""Benchmark: harvest throughput, end to end, from a local CKAN-compatible server.

Builds N datasets by cloning the real packages recorded in tests/fixtures/ckan/ (data.gov and
EnviDat: their fields, sizes and resources), each with its own id, name, modification time and
resource URLs. A separate process serves them as `package_search` in CKAN's envelope, paged by
the same keyset filter a real portal's Solr answers (`metadata_modified:[T TO *]`, sorted by
`metadata_modified asc, id asc`), from answers serialised once. Then `priorizer harvest` runs as
a real command against it, into a fresh database, and the figures are printed.

    python bench/harvest.py --datasets 100000
    python bench/harvest.py --datasets 100000 --database postgresql
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from allocate import PG_ADMIN, free_port
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.ckan_data import fixture_packages  # noqa: E402

PRIORIZER = Path(sys.executable).parent / "priorizer"


def lean_templates() -> list[dict[str, Any]]:
    """Packages with only what a harvester reads: about 1 KB each, three resources."""
    return [
        {
            "id": "x",
            "name": "x",
            "title": f"Sea surface temperature, {place}",
            "organization": {"name": org, "title": org.upper()},
            "tags": [{"name": t} for t in ("climate", "ocean", "satellite")],
            "tracking_summary": {"total": 10 * k, "recent": k},
            "resources": [
                {
                    "url": f"https://x.org/{k}/{j}.nc",
                    "name": f"part {j}",
                    "format": "NetCDF",
                    "size": 1048576 * (j + 1) * k,
                }
                for j in range(3)
            ],
        }
        for k, (place, org) in enumerate(
            [("Alaska", "noaa-gov"), ("Gulf of Mexico", "noaa-gov"), ("Davos", "wsl")], start=1
        )
    ]


def clone_catalog(n: int, shape: str = "real", seed: int = 1) -> list[tuple[str, str, bytes]]:
    """(modified at the millisecond, id, the package as JSON), sorted as the portal sorts."""
    rng = random.Random(seed)
    if shape == "real":
        templates = [p for p in fixture_packages() if p.get("resources")]
    else:
        templates = lean_templates()
    start = datetime(2015, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        template = templates[i % len(templates)]
        dataset_id = f"bench-{i:07d}"
        moment = start + timedelta(seconds=rng.randrange(0, 11 * 365 * 86400))
        modified = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
        resources = [
            {
                **r,
                "id": f"{dataset_id}-r{j}",
                "url": f"https://files.example.org/{dataset_id}/{j}"
                f"/{str(r.get('url') or 'file').rsplit('/', 1)[-1][:80]}",
            }
            for j, r in enumerate(template["resources"])
        ]
        package = {
            **template,
            "id": dataset_id,
            "name": dataset_id,
            "metadata_modified": modified,
            "resources": resources,
        }
        rows.append((modified[:23] + "Z", dataset_id, orjson.dumps(package)))
    rows.sort()
    return rows


def serve(port: int, n: int, shape: str, ready: Any) -> None:
    rows = clone_catalog(n, shape)
    keys = [(m, i) for m, i, _ in rows]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            start = int(query.get("start", 0))
            limit = min(int(query.get("rows", 10)), 1000)
            low = ""
            for clause in query.get("fq", "").split():
                if clause.startswith("metadata_modified:["):
                    low = clause[len("metadata_modified:[") :]
            first = bisect.bisect_left(keys, (low, "")) if low else 0
            page = rows[first + start : first + start + limit]
            body = (
                b'{"help":"http://127.0.0.1/api/3/action/help_show?name=package_search",'
                b'"success":true,"result":{"count":'
                + str(len(rows) - first).encode()
                + b',"sort":"metadata_modified asc, id asc","facets":{},"search_facets":{},'
                b'"results":[' + b",".join(r[2] for r in page) + b"]}}"
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    ready.put(sum(len(r[2]) for r in rows))
    server.serve_forever()


def pg_admin(*statements: str) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for statement in statements:
            conn.execute(text(statement))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--shape",
        choices=["real", "lean"],
        default="real",
        help="real: clones of the recorded data.gov and EnviDat packages (about 10 KB each); "
        "lean: only the fields a harvester reads (about 1 KB)",
    )
    args = parser.parse_args()

    port = free_port()
    ready: Any = multiprocessing.Queue()
    portal = multiprocessing.Process(
        target=serve, args=(port, args.datasets, args.shape, ready), daemon=True
    )
    portal.start()
    total_bytes = ready.get(timeout=600)
    workdir = Path(tempfile.mkdtemp(prefix="priorizer-bench-harvest-"))
    env = {**os.environ, "DATA_DIRECTORY": str(workdir), "LOG_LEVEL": "WARNING"}
    drop = None
    if args.database == "postgresql":
        drop = "priorizer_bench_harvest"
        pg_admin(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)', f'CREATE DATABASE "{drop}"')
        env["DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + "/" + drop
    try:
        subprocess.run([str(PRIORIZER), "status", "--json"], env=env, capture_output=True)
        started = time.perf_counter()
        done = subprocess.run(
            [str(PRIORIZER), "harvest", f"http://127.0.0.1:{port}", "--no-progress"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"harvest failed:\n{done.stderr[-3000:]}")
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        portal.terminate()
        if drop:
            pg_admin(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')
    assets = outcome["assets_created"] + outcome["assets_updated"]
    print(
        f"harvest of {outcome['datasets']:,} datasets ({total_bytes / 1e6:,.0f} MB of JSON, "
        f"{outcome['pages']} pages) into {args.database}: {elapsed:.1f} s end to end"
    )
    print(
        f"  {outcome['datasets'] / elapsed:,.0f} datasets/s, {assets / elapsed:,.0f} assets/s "
        f"({outcome['assets_created']:,} assets created); skipped resources: "
        f"{outcome['skipped_resources']}"
    )


if __name__ == "__main__":
    main()
