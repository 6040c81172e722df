"""The `priorizer` command as an operator runs it: real processes, real databases, real files."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from priorizer.db import Database
from tests.support.factories import table_snapshot
from tests.support.priorizer_server import PriorizerServer, ServerDied, describe, free_port, run_cli

pytestmark = pytest.mark.slow

DEMO_FILE = Path(__file__).parents[2] / "src" / "priorizer" / "seed" / "demo_ckan_data.json"

GOOD_ASSETS: list[dict[str, Any]] = [
    {
        "id": "a-1",
        "url": "https://data.example.org/ds-1/one.csv",
        "name": "one.csv",
        "size_mb": 12.5,
        "priority": 9,
        "dataset_id": "ds-1",
        "format": "CSV",
        "description": "kept as it came",
    },
    {
        "id": "a-2",
        "url": "https://data.example.org/ds-1/two.nc",
        "name": "two.nc",
        "size_mb": None,
        "priority": 3,
        "dataset_id": "ds-1",
        "format": None,
    },
    {
        "id": "a-3",
        "url": "https://data.example.org/ds-2/three.zip",
        "name": "three.zip",
        "size_mb": 2048.0,
        "priority": 5,
        "dataset_id": "ds-2",
        "format": "ZIP",
        "tags": ["climate", "snow"],
    },
    {
        "id": "a-4",
        "url": "https://data.example.org/ds-3/four.tif",
        "name": "four.tif",
        "size_mb": 0.25,
        "priority": 1,
        "dataset_id": None,
        "format": "GeoTIFF",
    },
]

GOOD_ALLOCATIONS: list[dict[str, Any]] = [
    # The seed wrote naive local timestamps (read as UTC); exports write aware ones.
    {"asset_id": "a-1", "node_id": "node-1", "status": "allocated",
     "allocated_at": "2026-01-10T08:00:00"},
    {"asset_id": "a-1", "node_id": "node-2", "status": "completed",
     "allocated_at": "2026-01-09T07:30:00+00:00"},
    {"asset_id": "a-3", "node_id": "node-1", "status": "allocated",
     "allocated_at": "2026-01-11T12:00:00+02:00"},
]  # fmt: skip


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def cli_env(tmp_path: Path, db_url: str | None = None) -> dict[str, str]:
    env = {"DATA_DIRECTORY": str(tmp_path / "data")}
    if db_url is not None:
        env["DATABASE_URL"] = db_url
    return env


def ok(args: list[str], env: dict[str, str]) -> Any:
    """Run a command that must succeed; return the JSON it prints on stdout."""
    result = run_cli(args, env)
    assert result.returncode == 0, describe(result)
    return json.loads(result.stdout.strip().splitlines()[-1])


def export(
    env: dict[str, str], directory: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    counts = ok(["export-json", str(directory)], env)
    assets = json.loads((directory / "ckan_data.json").read_text(encoding="utf-8"))
    allocations = json.loads((directory / "allocations.json").read_text(encoding="utf-8"))
    assert counts == {"assets": len(assets), "allocations": len(allocations)}
    return assets, allocations


def utc(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def holdings(records: list[dict[str, Any]]) -> set[tuple[str, str, str, datetime]]:
    return {(r["asset_id"], r["node_id"], r["status"], utc(r["allocated_at"])) for r in records}


def snapshot(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    database = Database(db_url)
    try:
        return table_snapshot(database)
    finally:
        database.dispose()


# --- serve --------------------------------------------------------------------------------------


def test_serve_demo_on_an_empty_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "fresh-data"
    assert not data.exists()
    demo_ids = {row["id"] for row in json.loads(DEMO_FILE.read_text(encoding="utf-8"))}

    server = PriorizerServer(tmp_path, {"DATA_DIRECTORY": str(data)}, args=["--demo"])
    with server, server.client() as client:
        response = client.post("/allocate", json={"free_space_gb": 10})
        assert response.status_code == 200, response.text
        items = response.json()
        assert items, "the demo catalog hands out work on the first request"
        assert {item["id"] for item in items} <= demo_ids
        assert sum(item["reserved_mb"] for item in items) <= 10 * 1024
        node_id = response.headers["x-node-id"]
        assert all(item["node_id"] == node_id for item in items)

        status = client.get("/status")
        assert status.status_code == 200, status.text
        assert status.json()["assets"] == len(demo_ids)
        assert status.json()["active_allocations"] == len(items)

        docs = client.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        schema = client.get("/openapi.json")
        assert schema.status_code == 200
        assert {"/allocate", "/release", "/health"} <= set(schema.json()["paths"])

    # No DATABASE_URL: a SQLite file in DATA_DIRECTORY, and the port we asked for.
    assert (data / "priorizer.sqlite3").is_file()
    stderr = server.stderr_path.read_text()
    assert f"Priorizer on http://127.0.0.1:{server.port} (sqlite)" in stderr
    assert server.stopped_cleanly, f"exit {server.returncode} after SIGTERM\n{stderr}"
    assert "Application shutdown complete" in stderr


def test_serve_loads_seed_files_and_expires_leases_on_schedule(tmp_path: Path) -> None:
    """First start imports DATA_DIRECTORY/ckan_data.json; the server's own maintenance job
    expires leases past ALLOCATION_EXPIRY_HOURS and their assets go to the next node."""
    data = tmp_path / "data"
    data.mkdir()
    write_json(data / "ckan_data.json", GOOD_ASSETS)
    env = {
        "DATA_DIRECTORY": str(data),
        "REPLICATION_TARGET": "1",
        "ALLOCATION_EXPIRY_HOURS": str(1.5 / 3600),  # leases of 1.5 s
        "AUTO_UPDATE_INTERVAL_MINUTES": str(0.5 / 60),  # maintenance every 0.5 s
    }
    everything = sorted(row["id"] for row in GOOD_ASSETS)

    server = PriorizerServer(tmp_path, env)
    with server, server.client() as client:
        first = client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-a"})
        assert first.status_code == 200, first.text
        assert sorted(item["id"] for item in first.json()) == everything
        assert (
            client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-b"}).json() == []
        )

        deadline = time.monotonic() + 20
        status = client.get("/status").json()
        while status["active_allocations"] and time.monotonic() < deadline:
            time.sleep(0.2)
            status = client.get("/status").json()
        assert status["active_allocations"] == 0, status
        assert status["last_maintenance"]["outcome"] == "ok", status

        expired = client.get("/allocations", params={"node_id": "node-a", "status": "expired"})
        assert sorted(item["asset_id"] for item in expired.json()["items"]) == everything
        second = client.post("/allocate", json={"free_space_gb": 10, "node_id": "node-b"})
        assert sorted(item["id"] for item in second.json()) == everything

    assert server.stopped_cleanly, server.logs()
    # Each cycle is one short line of ours, not kilobytes, nor APScheduler's two of its own.
    lines = server.stderr_path.read_text().splitlines()
    cycles = [line for line in lines if "priorizer.scheduler" in line]
    assert cycles and all(len(line) < 250 for line in cycles), cycles
    assert not [line for line in lines if "apscheduler" in line]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PRIORIZER_PORT", "abc"),
        ("PRIORIZER_PORT", "70000"),
        ("REPLICATION_TARGET", "0"),
        ("MAX_ASSETS_PER_ALLOCATION", "many"),
        ("UNKNOWN_SIZE_MB", "-1"),
        ("DATABASE_URL", "mysql://root@localhost/priorizer"),
    ],
)
def test_serve_refuses_a_bad_environment_value(tmp_path: Path, variable: str, value: str) -> None:
    data = tmp_path / "data"
    env = {"DATA_DIRECTORY": str(data), "PRIORIZER_PORT": str(free_port()), variable: value}

    started = time.monotonic()
    result = run_cli(["serve"], env, timeout=30)

    assert result.returncode != 0, describe(result)
    assert time.monotonic() - started < 15, "a bad value stops start-up at once"
    assert variable in result.stderr, describe(result)
    assert repr(value) in result.stderr, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    assert not data.exists(), "nothing was created before the settings were checked"


def test_server_helper_reports_a_server_that_dies(tmp_path: Path) -> None:
    """The helper itself: a server that cannot start fails fast with its stderr, not a hang."""
    server = PriorizerServer(tmp_path, {"REPLICATION_TARGET": "0"})
    started = time.monotonic()
    with pytest.raises(ServerDied, match="REPLICATION_TARGET"):
        server.start()
    assert time.monotonic() - started < 20
    assert server.returncode not in (None, 0)


# --- import-json / export-json ------------------------------------------------------------------


def test_import_then_export_gives_back_the_same_rows(db_url: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path, db_url)
    ckan = write_json(tmp_path / "good.json", GOOD_ASSETS)
    allocations = write_json(tmp_path / "allocs.json", GOOD_ALLOCATIONS)

    report = ok(["import-json", str(ckan), "--allocations", str(allocations)], env)
    assert report == {
        "assets_created": 4,
        "assets_updated": 0,
        "allocations_added": 3,
        "allocations_skipped": 0,
    }

    exported_assets, exported_allocations = export(env, tmp_path / "out")
    assert sorted(exported_assets, key=lambda r: r["id"]) == GOOD_ASSETS
    assert holdings(exported_allocations) == holdings(GOOD_ALLOCATIONS)
    for record in exported_allocations:
        # Leases run ALLOCATION_EXPIRY_HOURS (24) from when they were made.
        assert utc(record["expires_at"]) - utc(record["allocated_at"]) == timedelta(hours=24)

    # The export is itself an importable seed: the same again changes nothing.
    again = ok(
        [
            "import-json",
            str(tmp_path / "out" / "ckan_data.json"),
            "--allocations",
            str(tmp_path / "out" / "allocations.json"),
        ],
        env,
    )
    assert again == {
        "assets_created": 0,
        "assets_updated": 4,
        "allocations_added": 0,
        "allocations_skipped": 3,
    }
    assert export(env, tmp_path / "out2") == (exported_assets, exported_allocations)


def test_bad_import_files_change_nothing(db_url: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path, db_url)
    good = write_json(tmp_path / "good.json", GOOD_ASSETS)
    allocs = write_json(tmp_path / "allocs.json", GOOD_ALLOCATIONS)
    ok(["import-json", str(good), "--allocations", str(allocs)], env)
    before = snapshot(db_url)

    # 1. Malformed JSON: a new asset and a changed priority, then a trailing comma.
    changed = [{**GOOD_ASSETS[0], "priority": 2}, *GOOD_ASSETS[1:], {**GOOD_ASSETS[3], "id": "a-9"}]
    broken_text = json.dumps(changed, indent=1).replace('"a-9",', '"a-9",,', 1)
    with pytest.raises(json.JSONDecodeError) as parsed:
        json.loads(broken_text)
    broken = tmp_path / "broken.json"
    broken.write_text(broken_text, encoding="utf-8")

    result = run_cli(["import-json", str(broken)], env)
    assert result.returncode != 0, describe(result)
    position = f"line {parsed.value.lineno}, column {parsed.value.colno}"
    assert position in result.stderr, describe(result)
    assert "broken.json" in result.stderr, describe(result)
    assert snapshot(db_url) == before

    # 2. Well-formed JSON with one invalid row among valid changes: refused whole.
    invalid = write_json(tmp_path / "invalid.json", [*changed[:3], {**changed[3], "priority": 11}])
    result = run_cli(["import-json", str(invalid)], env)
    assert result.returncode != 0, describe(result)
    assert "row 4, field priority" in result.stderr, describe(result)  # counted from 1
    assert snapshot(db_url) == before

    # 3. A good catalog file with allocations naming an unknown asset: the assets are not
    #    written either (one transaction).
    new_catalog = write_json(tmp_path / "new.json", changed)
    unknown = write_json(tmp_path / "unknown.json", [{"asset_id": "a-404", "node_id": "node-9"}])
    result = run_cli(["import-json", str(new_catalog), "--allocations", str(unknown)], env)
    assert result.returncode != 0, describe(result)
    assert "a-404" in result.stderr, describe(result)
    assert snapshot(db_url) == before

    exported_assets, exported_allocations = export(env, tmp_path / "out")
    assert sorted(exported_assets, key=lambda r: r["id"]) == GOOD_ASSETS
    assert holdings(exported_allocations) == holdings(GOOD_ALLOCATIONS)


def test_import_accepts_allocation_times_west_of_utc(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    ckan = write_json(tmp_path / "good.json", GOOD_ASSETS)
    allocs = write_json(
        tmp_path / "allocs.json",
        [{"asset_id": "a-1", "node_id": "node-1", "allocated_at": "2026-01-10T03:00:00-05:00"}],
    )

    result = run_cli(["import-json", str(ckan), "--allocations", str(allocs)], env)

    assert result.returncode == 0, describe(result)
    _, exported = export(env, tmp_path / "out")
    assert [utc(r["allocated_at"]) for r in exported] == [datetime(2026, 1, 10, 8, tzinfo=UTC)]


# --- maintain -----------------------------------------------------------------------------------


def test_maintain_expires_overdue_leases_and_prints_json(db_url: str, tmp_path: Path) -> None:
    env = {**cli_env(tmp_path, db_url), "PRIORITY_JITTER": "0"}  # ranks stay put
    fresh = datetime.now(UTC).isoformat()
    ckan = write_json(tmp_path / "good.json", GOOD_ASSETS)
    allocs = write_json(
        tmp_path / "allocs.json",
        [
            {"asset_id": "a-1", "node_id": "node-1", "allocated_at": "2020-01-01T00:00:00Z"},
            {"asset_id": "a-2", "node_id": "node-1", "allocated_at": "2020-01-02T00:00:00Z"},
            {"asset_id": "a-3", "node_id": "node-1", "allocated_at": fresh},
            {
                "asset_id": "a-4",
                "node_id": "node-2",
                "status": "completed",
                "allocated_at": "2020-01-01T00:00:00Z",
            },
        ],
    )
    ok(["import-json", str(ckan), "--allocations", str(allocs)], env)

    outcome = ok(["maintain"], env)

    assert outcome["outcome"] == "ok"
    assert outcome["steps"]["expired_leases"] == 2, outcome
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            statuses = dict(conn.execute(text("SELECT asset_id, status FROM allocations")).all())
            counters = {
                row.id: (row.leases, row.copies, row.rank)
                for row in conn.execute(text("SELECT id, leases, copies, rank FROM assets"))
            }
    finally:
        engine.dispose()
    assert statuses == {"a-1": "expired", "a-2": "expired", "a-3": "allocated", "a-4": "completed"}
    # Expired leases put their assets back in the queue at full rank.
    assert counters == {
        "a-1": (0, 0, 9.0),
        "a-2": (0, 0, 3.0),
        "a-3": (1, 0, 0.0),  # priority 5, one holder (-3), 2 GiB (-2: docs/allocation.md)
        "a-4": (0, 1, -2.0),
    }

    assert ok(["maintain"], env)["steps"]["expired_leases"] == 0


# --- status ---------------------------------------------------------------------------------


def test_status_reads_the_database_and_says_when_maintenance_never_ran(
    db_url: str, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, db_url)
    ckan = write_json(tmp_path / "good.json", GOOD_ASSETS)
    allocs = write_json(tmp_path / "allocs.json", {"node-1": ["a-1", "a-2"]})
    ok(["import-json", str(ckan), "--allocations", str(allocs)], env)

    never = run_cli(["status"], env)
    assert never.returncode == 1, describe(never)  # degraded: no maintenance cycle yet
    assert "degraded" in never.stdout and "never" in never.stdout

    ok(["maintain"], env)
    healthy = run_cli(["status"], env)
    assert healthy.returncode == 0, describe(healthy)
    text_lines = [" ".join(line.split()) for line in healthy.stdout.splitlines()]
    assert f"assets {len(GOOD_ASSETS)}" in text_lines
    assert "open leases 2" in text_lines
    assert "nodes 1" in text_lines
    assert "outcome ok" in text_lines
    assert "health: healthy" in text_lines

    figures = json.loads(run_cli(["status", "--json"], env).stdout)
    assert (figures["assets"], figures["active_allocations"]) == (len(GOOD_ASSETS), 2)


def test_status_of_a_running_server_shows_what_its_status_endpoint_says(tmp_path: Path) -> None:
    server = PriorizerServer(tmp_path, args=["--demo"])
    with server, server.client() as client:
        leased = client.post("/allocate", json={"free_space_gb": 1, "node_id": "n-1"}).json()
        from_server = client.get("/status").json()
        shown = run_cli(["status", "--url", server.base_url, "--json"], {})
        table = run_cli(["status", "--url", server.base_url], {})

    assert shown.returncode == 0, describe(shown)
    figures = json.loads(shown.stdout)
    for key in ("assets", "active_allocations", "nodes", "copies", "system_health"):
        assert figures[key] == from_server[key], key
    assert figures["active_allocations"] == len(leased) > 0
    lines = [" ".join(line.split()) for line in table.stdout.splitlines()]
    assert f"assets {from_server['assets']:,}" in lines
    assert f"open leases {len(leased)}" in lines


def test_status_of_a_server_that_does_not_answer_exits_one(tmp_path: Path) -> None:
    result = run_cli(["status", "--url", f"http://127.0.0.1:{free_port()}"], {})

    assert result.returncode == 1
    assert "does not answer" in result.stderr


# --- logs -----------------------------------------------------------------------------------


def test_a_server_with_log_format_json_writes_only_json_lines(tmp_path: Path) -> None:
    server = PriorizerServer(tmp_path, {"LOG_FORMAT": "json"}, args=["--demo"])
    with server, server.client() as client:
        response = client.post(
            "/allocate",
            json={"free_space_gb": 1, "node_id": "n-1"},
            headers={"X-Request-Id": "trace-1"},
        )
        assert response.headers["X-Request-Id"] == "trace-1"

    lines = [line for line in server.stderr_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    # Everything after the CLI's own banner is JSON, uvicorn's messages included.
    assert len(records) == len(lines) - 1, lines
    assert any(r["logger"].startswith("uvicorn") for r in records)
    [access] = [r for r in records if r.get("request_id") == "trace-1"]
    assert not [r for r in records if r["logger"] == "uvicorn.access"]  # said once, by us
    assert (access["route"], access["status"], access["level"]) == ("/allocate", 200, "INFO")
    assert access["duration_ms"] > 0
