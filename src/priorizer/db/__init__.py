"""Storage: engines and locks (`engine`, `writers`), transactions (`database`), column types
(`types`), driver statements for the hot path (`driver`), and the migrations runner.

Every write is one callable inside `Database.write()`: on SQLite that is one `BEGIN IMMEDIATE`
transaction taken under a process-wide lock (threads hand the lock over at once instead of
sleeping in SQLite's busy handler); on PostgreSQL a plain transaction whose race-prone statements
lock what they touch. Only entry points (routes, jobs, CLI commands) open transactions.
"""

from priorizer.db.database import Database
from priorizer.db.driver import (
    DriverStatement,
    dialect_insert,
    driver_json,
    driver_time,
    from_driver_time,
    upsert_insert,
)
from priorizer.db.engine import POOL_SIZE, make_engine, sqlite_path
from priorizer.db.migrations import alembic_config, migrate
from priorizer.db.types import Base, UtcDateTime, partial_index

__all__ = [
    "POOL_SIZE",
    "Base",
    "Database",
    "DriverStatement",
    "UtcDateTime",
    "alembic_config",
    "dialect_insert",
    "driver_json",
    "driver_time",
    "from_driver_time",
    "make_engine",
    "migrate",
    "partial_index",
    "sqlite_path",
    "upsert_insert",
]
