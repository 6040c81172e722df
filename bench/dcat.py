"""Benchmark: harvesting a large DCAT-US data.json, streamed.

Generates a data.json of N datasets by cloning the real ones recorded in tests/fixtures/dcat/
(their fields and distributions, each clone with its own identifier and URLs), serves it from a
separate local HTTP process, then measures:

- reading alone: the catalog streamed through `harvest.datajson` (ijson over httpx), datasets
  counted, with the reader's peak Python heap (tracemalloc, a separate pass);
- the whole harvest: `priorizer harvest URL` as a real command into a fresh SQLite file (or
  PostgreSQL), with its datasets/s, assets/s and peak RSS.

    python bench/dcat.py --datasets 100000
    python bench/dcat.py --datasets 100000 --database postgresql
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from allocate import PG_ADMIN, free_port
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from priorizer.harvest.datajson import DataJsonOptions, open_catalog  # noqa: E402
from tests.support.dcat import CATALOGS, catalog  # noqa: E402


def generate(path: Path, count: int) -> None:
    """A v1.1 catalog of `count` datasets, written a dataset at a time."""
    models = [d for name in CATALOGS for d in catalog(name)["dataset"] if d.get("distribution")]
    with open(path, "w") as out:
        out.write('{"conformsTo": "https://project-open-data.cio.gov/v1.1/schema", "dataset": [')
        for n in range(count):
            dataset = copy.deepcopy(models[n % len(models)])
            dataset["identifier"] = f"bench-{n}"
            for k, entry in enumerate(dataset.get("distribution") or []):
                for key in ("downloadURL", "accessURL"):
                    if isinstance(entry.get(key), str):
                        entry[key] = f"https://data.example.gov/{n}/{k}/{key}"
            out.write(("," if n else "") + json.dumps(dataset))
        out.write("]}")


def serve(path: str, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            size = os.path.getsize(path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            with open(path, "rb") as handle:
                self.wfile.write(handle.read()) if size < 1 else os.sendfile(
                    self.wfile.fileno(), handle.fileno(), 0, size
                )

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def read_alone(url: str, *, trace: bool) -> tuple[int, float, int]:
    """Datasets read, seconds, and peak heap bytes (when traced)."""
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    count = 0
    with open_catalog(DataJsonOptions(url)) as (_version, datasets):
        for _ in datasets:
            count += 1
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    return count, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="priorizer-bench-dcat-"))
    catalog_path = work / "data.json"
    began = time.perf_counter()
    generate(catalog_path, args.datasets)
    size_mb = catalog_path.stat().st_size / 1e6
    print(
        f"catalog: {args.datasets:,} datasets, {size_mb:,.1f} MB "
        f"(generated in {time.perf_counter() - began:.1f}s)"
    )
    port = free_port()
    server = multiprocessing.Process(target=serve, args=(str(catalog_path), port), daemon=True)
    server.start()
    time.sleep(0.5)
    url = f"http://127.0.0.1:{port}/data.json"
    try:
        count, seconds, _ = read_alone(url, trace=False)
        print(f"read alone: {count:,} datasets in {seconds:.2f}s ({count / seconds:,.0f}/s)")
        _, traced_seconds, peak = read_alone(url, trace=True)
        print(
            f"reader's peak Python heap: {peak / 1e6:.2f} MB (traced pass: {traced_seconds:.1f}s)"
        )
        env = {**os.environ, "DATA_DIRECTORY": str(work / "data"), "LOG_LEVEL": "WARNING"}
        env.pop("DATABASE_URL", None)
        if args.database == "postgresql":
            name = f"priorizer_bench_dcat_{os.getpid()}"
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            env["DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        started = time.perf_counter()
        result = subprocess.run(
            [str(Path(sys.executable).parent / "priorizer"), "harvest", url, "--no-progress"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"harvest failed:\n{result.stderr[-3000:]}")
        run = json.loads(result.stdout.strip().splitlines()[-1])
        assets = run["assets_created"] + run["assets_updated"]
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"harvest ({args.database}): {run['datasets']:,} datasets, {assets:,} assets "
            f"({run['pages_to_discover']:,} pages to discover) in {seconds:.1f}s"
        )
        print(
            f"  {run['datasets'] / seconds:,.0f} datasets/s, {assets / seconds:,.0f} assets/s; "
            f"peak RSS of the command {rss_mb:,.0f} MB"
        )
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
