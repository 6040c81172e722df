"""Backups: a consistent copy of the database while it serves, and loading one back.

SQLite: SQLite's online backup API, which copies the whole database as one snapshot while
writers go on. PostgreSQL: `pg_dump --format=custom` and `pg_restore` (they must be on PATH, at
least as new as the server). Either way a backup is written beside its target and renamed into
place, so a failed backup never destroys the previous one; a restore checks the file whole
before it touches the database.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import make_url

from priorizer.db import Database, migrate, sqlite_path
from priorizer.errors import Conflict, Invalid, PriorizerError
from priorizer.models import Allocation, Asset, Node

# What makes a database "not empty": restoring over it needs --force.
CONTENT = (Asset, Node, Allocation)
PRIORIZER_TABLES = frozenset({"assets", "allocations", "nodes", "alembic_version"})


def backup(url: str, target: Path, *, force: bool) -> dict[str, Any]:
    """Copy the database at `url` into `target` (a SQLite file, or a pg_dump archive)."""
    if target.exists() and not force:
        raise Conflict(f"{target} exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    path = sqlite_path(url)
    try:
        if path is not None:
            counts = _sqlite_backup(Path(path), partial)
        else:
            _pg(["pg_dump", "--format=custom", "--no-owner", f"--file={partial}"], url)
            counts = {}  # what the dump holds is only known by restoring it
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return {"backup": str(target), "bytes": target.stat().st_size, **counts}


def restore(url: str, source: Path, *, force: bool) -> dict[str, Any]:
    """Load the backup `source` into the database at `url`, then migrate it. A database with
    content is replaced only with `force`; a file that is not a whole Priorizer backup is
    refused before anything is touched."""
    if not source.is_file():
        raise Invalid(f"{source} is not a file")
    path = sqlite_path(url)
    if path is not None:
        _check_sqlite_backup(source)
    else:
        _pg(["pg_restore", "--list", str(source)], url=None, what=source)
    counts = _counts(url)
    if any(counts.values()) and not force:
        raise Conflict(
            f"the database is not empty ({_describe(counts)}); pass --force to replace it "
            "with the backup"
        )
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        backup_db, live = _sqlite_read_only(source), sqlite3.connect(path)
        try:
            backup_db.backup(live)
        finally:
            live.close()
            backup_db.close()
    else:
        _pg(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                "--exit-on-error",
                str(source),
            ],
            url,
            what=source,
        )
    migrate(url)
    return {"restored": str(source), **_counts(url)}


def _sqlite_backup(source: Path, partial: Path) -> dict[str, int]:
    if not source.is_file():
        raise Invalid(f"there is no database at {source} to back up")
    _check_priorizer_tables(_sqlite_read_only(source), source)
    original, copy = _sqlite_read_only(source), sqlite3.connect(partial)
    try:
        original.backup(copy)  # all pages in one step: one consistent snapshot
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        return _sqlite_counts(copy)
    finally:
        copy.close()
        original.close()


def _check_sqlite_backup(source: Path) -> None:
    connection = _sqlite_read_only(source)
    try:
        _check_priorizer_tables(connection, source)
        problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as error:
        raise Invalid(f"{source} is not a readable SQLite database: {error}") from error
    finally:
        connection.close()
    if problems != ["ok"]:
        raise Invalid(f"{source} is damaged: {'; '.join(problems[:3])}")


def _check_priorizer_tables(connection: sqlite3.Connection, source: Path) -> None:
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as error:
        connection.close()
        raise Invalid(f"{source} is not a SQLite database: {error}") from error
    if not tables >= PRIORIZER_TABLES:
        connection.close()
        raise Invalid(f"{source} is not a Priorizer database (its tables are not Priorizer's)")


def _sqlite_read_only(path: Path) -> sqlite3.Connection:
    """Opened read-only, whatever characters its path holds (`#` and `?` included)."""
    return sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)


def _sqlite_counts(connection: sqlite3.Connection) -> dict[str, int]:
    return {
        model.__tablename__: connection.execute(
            f"SELECT count(*) FROM {model.__tablename__}"
        ).fetchone()[0]
        for model in CONTENT
    }


def _counts(url: str) -> dict[str, int]:
    """Rows in the database at `url`; zeros where it has no tables (or no file) yet."""
    path = sqlite_path(url)
    if path is not None and not Path(path).is_file():
        return {model.__tablename__: 0 for model in CONTENT}
    database = Database(url)
    try:
        with database.read() as session:
            if not inspect(session.get_bind()).has_table("assets"):
                return {model.__tablename__: 0 for model in CONTENT}
            return {
                model.__tablename__: session.execute(
                    select(func.count()).select_from(model)
                ).scalar_one()
                for model in CONTENT
            }
    finally:
        database.dispose()


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in counts.items() if n)


def _pg(command: list[str], url: str | None, *, what: Path | None = None) -> None:
    """Run a PostgreSQL client tool on the database at `url` (its password in the environment,
    not on the command line, where `ps` would show it)."""
    if shutil.which(command[0]) is None:
        raise PriorizerError(
            f"{command[0]} is not installed: PostgreSQL backups use pg_dump and pg_restore "
            "(Debian: apt-get install postgresql-client)"
        )
    env = dict(os.environ)
    if url is not None:
        parsed = make_url(url)
        if parsed.password:
            env["PGPASSWORD"] = str(parsed.password)
        libpq = parsed.set(drivername="postgresql", password=None)
        command = [*command, f"--dbname={libpq.render_as_string(hide_password=False)}"]
    # pg_restore quotes bytes of a damaged file in its messages: they must not break ours.
    done = subprocess.run(
        command, capture_output=True, text=True, errors="replace", env=env, check=False
    )
    if done.returncode != 0:
        about = f" {what}:" if what is not None else ""
        raise PriorizerError(f"{command[0]} failed on{about} {done.stderr.strip()[-1000:]}")
