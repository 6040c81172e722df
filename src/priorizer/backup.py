"""Backups: a consistent copy of the database while it serves, and loading one back.

SQLite: SQLite's online backup API, which copies the whole database as one snapshot while
writers go on. PostgreSQL: `pg_dump --format=custom` and `pg_restore` (they must be on PATH, at
least as new as the server).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import make_url

from priorizer.db import Database, migrate, sqlite_path
from priorizer.errors import Conflict, Invalid, PriorizerError
from priorizer.models import Allocation, Asset, Node

# What makes a database "not empty": restoring over it needs --force.
CONTENT = (Asset, Node, Allocation)


def backup(url: str, target: Path, *, force: bool) -> dict[str, Any]:
    """Copy the database at `url` into `target` (a SQLite file, or a pg_dump archive)."""
    if target.exists() and not force:
        raise Conflict(f"{target} exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    path = sqlite_path(url)
    if path is not None:
        partial = target.with_name(target.name + ".partial")
        source, copy = sqlite3.connect(path), sqlite3.connect(partial)
        try:
            source.backup(copy)  # all pages in one step: one consistent snapshot
        finally:
            copy.close()
            source.close()
        partial.replace(target)
    else:
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={target}", _libpq(url)])
    return {
        "backup": str(target),
        "bytes": target.stat().st_size,
        **_counts(_sqlite_url(target) if path else url),
    }


def restore(url: str, source: Path, *, force: bool) -> dict[str, Any]:
    """Load the backup `source` into the database at `url`, then migrate it. A database with
    content is replaced only with `force`."""
    if not source.is_file():
        raise Invalid(f"{source} is not a file")
    path = sqlite_path(url)
    if path is not None:
        _check_sqlite_backup(source)
    database = Database(url)
    try:
        migrate(url)
        counts = _count(database)
    finally:
        database.dispose()
    if any(counts.values()) and not force:
        raise Conflict(
            f"the database is not empty ({_describe(counts)}); pass --force to replace it "
            "with the backup"
        )
    if path is not None:
        backup_db, live = sqlite3.connect(source), sqlite3.connect(path)
        try:
            backup_db.backup(live)
        finally:
            live.close()
            backup_db.close()
    else:
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                f"--dbname={_libpq(url)}",
                str(source),
            ]
        )
    migrate(url)
    return {"restored": str(source), **_counts(url)}


def _check_sqlite_backup(source: Path) -> None:
    try:
        connection = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise Invalid(f"{source} is not a SQLite database: {error}") from error
    if not {"assets", "allocations", "nodes", "alembic_version"} <= tables:
        raise Invalid(f"{source} is not a Priorizer backup (its tables are not Priorizer's)")


def _counts(url: str) -> dict[str, int]:
    database = Database(url)
    try:
        return _count(database)
    finally:
        database.dispose()


def _count(database: Database) -> dict[str, int]:
    with database.read() as session:
        if not inspect(session.get_bind()).has_table("assets"):
            return {model.__tablename__: 0 for model in CONTENT}
        return {
            model.__tablename__: session.execute(
                select(func.count()).select_from(model)
            ).scalar_one()
            for model in CONTENT
        }


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in counts.items() if n)


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _libpq(url: str) -> str:
    """The URL as libpq tools take it (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise PriorizerError(
            f"{command[0]} is not installed: PostgreSQL backups use pg_dump and pg_restore "
            "(Debian: apt-get install postgresql-client)"
        )
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PriorizerError(f"{command[0]} failed: {done.stderr.strip()[-1000:]}")
