"""Engines: SQLite with its pragmas and one writer connection, PostgreSQL with a pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: SQLAlchemy's "begin" event below issues BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # WAL mode is kept in the file: set it only when it is not (under heavy load, setting it
    # again on a checkpoint's new connection failed now and then with "database is locked").
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL survives a killed process; only an OS crash can lose the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-262144")
    cursor.execute("PRAGMA mmap_size=4294967296")
    # Checkpoints run in a background thread (`Database._checkpoint_loop`), not in requests.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


# PostgreSQL connections a process keeps (and as many more at peaks): every process of every
# instance has its own pool, and together they must stay under the server's max_connections.
POOL_SIZE = 20


def make_engine(url: str, *, immediate: bool = False, pool_size: int = POOL_SIZE) -> Engine:
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Writers take turns (see `Database.write`), so one connection serves them all and
        # keeps its page cache warm; readers get a pool.
        pool = {"pool_size": 1, "max_overflow": 0} if immediate else {"pool_size": 20}
        engine = create_engine(url, connect_args={"check_same_thread": False}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def sqlite_path(url: str) -> str | None:
    path = url.split("///", 1)[-1] if url.startswith("sqlite") else ""
    return None if path in ("", ":memory:") else path
