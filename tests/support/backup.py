"""Databases, content and command output helpers shared by the backup tests
(tests/e2e/test_backup_*.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text

from priorizer.config import Settings
from priorizer.models import metadata
from priorizer.startup import prepare
from tests.conftest import PG_ADMIN_URL
from tests.support.priorizer_server import describe

PG_TOOLS = ("pg_dump", "pg_restore")


@dataclass(frozen=True)
class Db:
    """One Priorizer database: the settings a process gets (`env`) and its SQLAlchemy URL."""

    env: dict[str, str]
    url: str
    data_directory: Path


def sqlite_db(data_directory: Path) -> Db:
    """The SQLite database of a DATA_DIRECTORY, as the commands find it."""
    return Db(
        {"DATA_DIRECTORY": str(data_directory)},
        f"sqlite:///{data_directory / 'priorizer.sqlite3'}",
        data_directory,
    )


def pg_tools_missing_reason() -> str | None:
    missing = [tool for tool in PG_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not on PATH (apt-get install postgresql-client)"
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            server = int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    finally:
        engine.dispose()
    for tool in PG_TOOLS:
        found = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
        version = re.search(r"\(PostgreSQL\) (\d+)", found.stdout)
        if version is None:
            return f"{tool} --version answered {found.stdout.strip()!r}"
        if int(version.group(1)) < server:
            return f"{tool} {version.group(1)} is older than the PostgreSQL server ({server})"
    return None


def dump(url: str) -> dict[str, list[str]]:
    """Every row of every table (and the schema version), to compare databases."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            tables: dict[str, list[str]] = {}
            for table in metadata.sorted_tables:
                if table.name in present:
                    rows = conn.execute(table.select()).all()
                    tables[table.name] = sorted(repr(tuple(row)) for row in rows)
            if "alembic_version" in present:
                rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
                tables["alembic_version"] = sorted(repr(tuple(row)) for row in rows)
            return tables
    finally:
        engine.dispose()


def seed(db: Db, assets: list[dict[str, Any]], allocations: list[dict[str, Any]]) -> None:
    """Migrate `db` and import these rows as a server's first start does (in this process)."""
    db.data_directory.mkdir(parents=True, exist_ok=True)
    (db.data_directory / "ckan_data.json").write_text(json.dumps(assets), encoding="utf-8")
    (db.data_directory / "allocations.json").write_text(json.dumps(allocations), encoding="utf-8")
    settings = Settings.of(
        database_url=db.url, data_directory=db.data_directory, run_scheduler=False
    )
    prepare(settings)
    (db.data_directory / "ckan_data.json").unlink()
    (db.data_directory / "allocations.json").unlink()


def small_content(prefix: str, n: int = 12) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A few assets, two nodes, open leases and copies."""
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assets = [
        {
            "id": f"{prefix}-{i}",
            "url": f"https://data.example.org/{prefix}/{i}.csv",
            "name": f"{i}.csv",
            "size_mb": 10.0 + i,
            "priority": 1 + i % 10,
        }
        for i in range(n)
    ]
    allocations = [
        {
            "asset_id": f"{prefix}-{i}",
            "node_id": f"{prefix}-node-{i // 2 % 2}",
            "status": "completed" if i % 3 == 0 else "allocated",
            "expires_at": expires,
        }
        for i in range(0, n, 2)
    ]
    return assets, allocations


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, describe(result)
    return json.loads(lines[-1])


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in output(result), describe(result)


def known_bug(ok: bool, bug: str) -> None:
    """The last check of a test, where a bug of the commands was once reported (and fixed)."""
    assert ok, bug
