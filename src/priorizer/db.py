"""Engines, transactions and migrations.

Every write is one callable inside `Database.write()`: on SQLite that is one `BEGIN IMMEDIATE`
transaction taken under a process-wide lock (threads hand the lock over at once instead of
sleeping in SQLite's busy handler); on PostgreSQL a plain transaction whose race-prone statements
lock what they touch. Only entry points (routes, jobs, CLI commands) open transactions.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import fcntl
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
from sqlalchemy import DateTime, Index, MetaData, TypeDecorator, create_engine, event, text
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Session

log = logging.getLogger(__name__)
T = TypeVar("T")
CHECKPOINT_SECONDS = 1.0
RESTART_EVERY_ROUNDS = 10
RESTART_BACKLOG_FRAMES = 2_000  # 8 MiB of pages still to copy: a pause of a few ms
WAL_LIMIT_FRAMES = 250_000  # 1 GiB: past this, writers pause whatever it costs
CHECKPOINT_WAIT_MS = 100
BACKGROUND_PAUSE_MAX_SECONDS = 0.1
BUSY_TIMEOUT_MS = 10_000

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def partial_index(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    """An index over the rows matching `where`, on SQLite and PostgreSQL alike."""
    return Index(
        name, *columns, unique=unique, sqlite_where=text(where), postgresql_where=text(where)
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


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


class WriterTurn:
    """Whose turn it is to write a SQLite file: a lock between this process's threads and,
    through `flock` on a file beside the database, between processes (server workers, CLI
    commands). Writers wait in the kernel's queue, and start as soon as the last one is done,
    instead of sleeping in SQLite's busy handler."""

    def __init__(self, database_path: str | None, *, name: str = "writer") -> None:
        self._thread = threading.Lock()
        self._fd = (
            None
            if database_path is None
            else os.open(f"{database_path}-{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        )

    def acquire(self, blocking: bool = True) -> bool:
        if not self._thread.acquire(blocking):
            return False
        if self._fd is None:
            return True
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._thread.release()
            return False
        except BaseException:
            self._thread.release()
            raise
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread.release()

    def __enter__(self) -> WriterTurn:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception


# The most calls one group commit takes: bounds how long the first of them waits.
GROUP_COMMIT_MAX = 64


class GroupCommit:
    """SQLite group commit for one process: the write calls submitted while the event loop
    was busy run in one transaction (`Database.run_batch`), so what a commit costs (the WAL
    append, the pages many calls touch, BEGIN and COMMIT) is paid once for all of them. Each
    call still sees the database as if it ran alone after the ones before it, and none is
    answered before the transaction holding it is committed."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._waiting: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None

    async def submit(self, work: Callable[[Session], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((work, future))
        if not self._flushing:
            # Runs once the loop has read every request ready now: they join this batch.
            self._flushing = True
            self._task = loop.create_task(self._flush())
        result = await future
        if isinstance(result, _Failed):
            raise result.error
        return cast(T, result)

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:GROUP_COMMIT_MAX]
                del self._waiting[:GROUP_COMMIT_MAX]
                works = [work for work, _ in batch]
                try:
                    results = await self._run(works)
                except BaseException as error:  # the commit failed: none of them happened
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    if not isinstance(error, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                await asyncio.sleep(0)  # answer these before taking the next batch
        finally:
            self._flushing = False

    async def _run(self, works: list[Callable[[Session], Any]]) -> list[Any]:
        lock = self._database._write_lock
        assert lock is not None
        # The writers' turn free: run right here (no thread hand-off); else wait in a thread.
        if lock.acquire(blocking=False):
            try:
                return self._database.run_batch(works, lock=False)
            finally:
                lock.release()
        return await anyio.to_thread.run_sync(self._database.run_batch, works)


class Database:
    """The storage boundary: a write engine, a read engine and the transactions over them."""

    def __init__(self, url: str, *, group_commit: bool = True, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.write_engine = make_engine(url, immediate=True, pool_size=pool_size)
        self.read_engine = make_engine(url) if self.is_sqlite else self.write_engine
        self._write_lock = WriterTurn(sqlite_path(url)) if self.is_sqlite else None
        self._group = GroupCommit(self) if self.is_sqlite and group_commit else None
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if self.is_sqlite:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="wal-checkpoint", daemon=True
            )
            self._checkpointer.start()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        if self._write_lock is not None:
            with self._write_lock, self._session(self.write_engine) as session:
                yield session
        else:
            with self._session(self.write_engine) as session:
                yield session

    @contextmanager
    def background_write(self) -> Iterator[Session]:
        """A write transaction for background work (maintenance). On SQLite, it then waits
        as long as it held the writers' turn: `flock` is not fair, and a process that takes
        the turn again at once would keep requests waiting for its whole job."""
        started = time.perf_counter()
        with self.write() as session:
            yield session
        if self.is_sqlite:
            time.sleep(min(time.perf_counter() - started, BACKGROUND_PAUSE_MAX_SECONDS))

    async def run_write(self, work: Callable[[Session], T]) -> T:
        """`work` in a write transaction, from async code.

        SQLite, with group commit (the default): the calls made while the event loop is busy
        share one transaction (`GroupCommit`): each runs in a savepoint of its own, in order,
        and all are answered once the one commit is done. Without: when no other writer is
        busy, it runs right here on the event loop (writes take turns anyway, and this saves
        two thread hand-offs); otherwise it waits for its turn in a worker thread."""
        if self._group is not None:
            return await self._group.submit(work)
        if self._write_lock is not None and self._write_lock.acquire(blocking=False):
            try:
                with self._session(self.write_engine) as session:
                    return work(session)
            finally:
                self._write_lock.release()
        return await anyio.to_thread.run_sync(self._run_write, work)

    def run_batch(
        self, works: Sequence[Callable[[Session], Any]], *, lock: bool = True
    ) -> list[Any]:
        """Every work in one write transaction, in order, each in a savepoint of its own:
        each sees what those before it wrote, and one that raises is undone alone (its
        exception is its result). Returns only once the transaction is committed (and raises
        if the commit fails: then none of them happened). `lock=False`: the caller holds the
        writers' turn already."""
        results: list[Any] = []
        with (
            self._write_lock if lock and self._write_lock is not None else nullcontext(),
            self._session(self.write_engine) as session,
        ):
            for work in works:
                saved = copy.deepcopy(session.info)  # what works leave for after the commit
                try:
                    with session.begin_nested():
                        results.append(work(session))
                except Exception as error:  # undone alone; the others go on
                    session.info.clear()
                    session.info.update(saved)
                    results.append(_Failed(error))
        return results

    def _run_write(self, work: Callable[[Session], T]) -> T:
        with self.write() as session:
            return work(session)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session; objects loaded in it stay readable after the block."""
        with Session(self.read_engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only session over one consistent snapshot, however many statements it runs
        (exports). SQLite's read transaction is one already; PostgreSQL needs REPEATABLE READ."""
        with Session(self.read_engine, expire_on_commit=False) as session:
            if not self.is_sqlite:
                session.connection(
                    execution_options={
                        "isolation_level": "REPEATABLE READ",
                        "postgresql_readonly": True,
                    }
                )
            yield session

    @contextmanager
    def _session(self, engine: Engine) -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def exclusive(self, name: str, *, key: int, wait: bool = False) -> Iterator[bool]:
        """Whether this caller has the lock `key` (of the kind `name`) to itself among every
        process using the database, held for the block; without `wait`, it does not wait for
        another holder. SQLite: `flock` on a file beside the database named by both (one kind
        may hold many keys: a harvest locks its own source); PostgreSQL: the session advisory
        lock `key`, on a connection of its own."""
        if self.is_sqlite:
            turn = WriterTurn(sqlite_path(self.url), name=f"{name}-{int(key):x}")
            try:
                mine = turn.acquire(blocking=wait)
                try:
                    yield mine
                finally:
                    if mine:
                        turn.release()
            finally:
                turn.close()
            return
        with self.write_engine.connect() as conn:
            if wait:
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({int(key)})")
                mine = True
            else:
                lock = f"SELECT pg_try_advisory_lock({int(key)})"
                mine = bool(conn.exec_driver_sql(lock).scalar())
            conn.commit()
            try:
                yield mine
            finally:
                if mine:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({int(key)})")
                    conn.commit()

    def ping(self) -> None:
        with self.read_engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the database file every second, off the request path.

        A PASSIVE checkpoint copies while writers go on; but as long as writes never pause,
        the WAL cannot start over and grows. So now and then, once a passive checkpoint has
        nearly caught up, writers pause for the short rest (a RESTART checkpoint under the
        writers' turn: a few pages and an fsync), and the next write starts the WAL over.
        A killed process leaves a WAL that the next open replays."""
        rounds = 0
        while not self._closing.wait(CHECKPOINT_SECONDS):
            rounds += 1
            self.checkpoint_round(restart=rounds % RESTART_EVERY_ROUNDS == 0)

    def checkpoint_round(self, *, restart: bool = True) -> None:
        assert self._write_lock is not None
        frames, copied = self.checkpoint("PASSIVE")
        behind = frames - copied
        if (restart and behind <= RESTART_BACKLOG_FRAMES) or frames > WAL_LIMIT_FRAMES:
            with self._write_lock:
                started = time.perf_counter()
                self.checkpoint("RESTART")
            log.debug("writers paused %.3fs for a checkpoint", time.perf_counter() - started)

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int]:
        """Run a checkpoint; the frames in the WAL and those copied to the database."""
        try:
            with self.read_engine.connect() as conn:
                # Never wait long for a reader to finish: the next round will do.
                conn.exec_driver_sql(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
                try:
                    row = conn.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})").one()
                finally:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except Exception:  # a failed checkpoint is retried next time; the WAL keeps the data
            log.warning("WAL checkpoint failed", exc_info=True)
            return 0, 0
        _busy, frames, copied = row
        return frames, copied

    def dispose(self) -> None:
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=30)
            self.checkpoint("TRUNCATE")
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()
        checkpointing = self._checkpointer is not None and self._checkpointer.is_alive()
        if self._write_lock is not None and not checkpointing:
            self._write_lock.close()


def migrate(url: str) -> None:
    """Bring the schema to the newest Alembic revision (safe to call on every start), and
    the server-side functions to this code's version (PostgreSQL)."""
    from alembic import command

    from priorizer.allocation.repo import install_functions

    command.upgrade(alembic_config(url), "head")
    if not url.startswith("sqlite"):
        engine = create_engine(url)
        try:
            with engine.begin() as connection:
                install_functions(connection)
        finally:
            engine.dispose()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upsert_insert(dialect_name: str, table: Any) -> Any:
    """An INSERT that knows ON CONFLICT, in that dialect (SQLite or PostgreSQL)."""
    from sqlalchemy.dialects import postgresql, sqlite

    module: Any = postgresql if dialect_name == "postgresql" else sqlite
    return module.insert(table)


def dialect_insert(session: Session, table: Any) -> Any:
    """An INSERT that knows ON CONFLICT, in the session's dialect."""
    return upsert_insert(session.get_bind().dialect.name, table)


class DriverStatement:
    """A statement run straight on the driver's cursor, for the allocation hot path.

    SQLAlchemy compiles it once per dialect (from `build(dialect_name)`); each call then costs
    what the driver costs — for an index seek on SQLite, SQLAlchemy's per-call work is several
    times the query itself. Parameters go in as the driver's types (see `driver_time`), rows
    come out as named tuples.
    """

    def __init__(self, build: Callable[[str], Any]) -> None:
        self._build = build
        self._compiled: dict[str, tuple[str, list[str] | None, dict[str, Any]]] = {}

    def _compile(self, dialect: Dialect) -> tuple[str, list[str] | None, dict[str, Any]]:
        if dialect.name not in self._compiled:
            compiled = self._build(dialect.name).compile(dialect=dialect)
            order = list(compiled.positiontup or []) if compiled.positional else None
            constants = compiled.construct_params(_check=False)  # the literal values in it
            self._compiled[dialect.name] = (compiled.string, order, dict(constants))
        return self._compiled[dialect.name]

    def execute(self, session: Session, parameters: dict[str, Any]) -> Any:
        connection = session.connection()
        sql, order, constants = self._compile(connection.dialect)
        values = {**constants, **parameters}
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(sql, [values[name] for name in order] if order is not None else values)
        return cursor

    def execute_many(self, session: Session, rows: Sequence[dict[str, Any]]) -> None:
        """The statement once per row, in one driver call (bulk writes)."""
        connection = session.connection()
        sql, order, constants = self._compile(connection.dialect)
        values: list[Any] = [{**constants, **row} for row in rows]
        if order is not None:
            values = [[row[name] for name in order] for row in values]
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(sql, values)

    def rows(self, session: Session, parameters: dict[str, Any]) -> list[Any]:
        cursor = self.execute(session, parameters)
        shape = _row_type(tuple(column[0] for column in cursor.description))
        return [shape._make(row) for row in cursor.fetchall()]

    def scalar(self, session: Session, parameters: dict[str, Any]) -> Any:
        row = self.execute(session, parameters).fetchone()
        return None if row is None else row[0]


@functools.cache
def _row_type(names: tuple[str, ...]) -> Any:
    return collections.namedtuple("DriverRow", names)


def driver_time(session: Session, value: datetime) -> Any:
    """A datetime as the driver stores it in our columns (see `UtcDateTime`)."""
    if session.get_bind().dialect.name == "sqlite":
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def from_driver_time(value: Any) -> datetime | None:
    """A datetime of our columns as a driver statement returns it, aware (UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)  # SQLite's text (`driver_time`)


def driver_json(session: Session, value: Any) -> Any:
    """A value for a JSON column as the driver takes it."""
    if session.get_bind().dialect.name == "sqlite":
        return json.dumps(value)
    from psycopg.types.json import Json

    return Json(value)
