"""Transactions: the storage boundary every entry point opens its sessions from.

Every write is one callable inside `Database.write()`: on SQLite that is one `BEGIN IMMEDIATE`
transaction taken under a process-wide lock (threads hand the lock over at once instead of
sleeping in SQLite's busy handler); on PostgreSQL a plain transaction whose race-prone statements
lock what they touch. Only entry points (routes, jobs, CLI commands) open transactions.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

import anyio
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from priorizer.db.engine import BUSY_TIMEOUT_MS, POOL_SIZE, make_engine, sqlite_path
from priorizer.db.writers import GroupCommit, WriterTurn, _Failed

log = logging.getLogger(__name__)
T = TypeVar("T")


# A passive checkpoint every quarter second: each one's fsync then holds a quarter of what a
# second's pages would (at 1M assets and 200 allocations/s, ~30,000 pages: 100-125 ms, while
# writers appending to the WAL slowed), and the WAL starts over every 10 s as before.
CHECKPOINT_SECONDS = 0.25
RESTART_EVERY_ROUNDS = 40
RESTART_BACKLOG_FRAMES = 2_000  # 8 MiB of pages still to copy: a pause of a few ms
# Before pausing writers for a RESTART, passive passes copy what writers added during the last
# one, until a pass finds no more than this (the pause's fsync grows with the pages it copies:
# ~1,000 pages, 13-30 ms here; ~100, 2 ms), or `CATCH_UP_PASSES` have run.
CATCH_UP_FRAMES = 100
CATCH_UP_PASSES = 5
WAL_LIMIT_FRAMES = 250_000  # 1 GiB: past this, writers pause whatever it costs
CHECKPOINT_WAIT_MS = 100
BACKGROUND_PAUSE_MAX_SECONDS = 0.1


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
        """Copy the WAL back into the database file, a few times a second, off the request path.

        A PASSIVE checkpoint copies while writers go on; but as long as writes never pause,
        the WAL cannot start over and grows. So now and then, once passive checkpoints have
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
        behind = frames - copied  # what a reader's snapshot kept this pass from copying
        if (restart and behind <= RESTART_BACKLOG_FRAMES) or frames > WAL_LIMIT_FRAMES:
            # A pass copies what was in the WAL when it began; what writers added meanwhile
            # (a second's pages took ~50 ms to copy and sync at 100k assets: ~1,000 more pages
            # at 200 allocations/s) would be the pause's. Passes catch up on it, each shorter.
            for _ in range(CATCH_UP_PASSES):
                before = copied
                frames, copied = self.checkpoint("PASSIVE")
                if copied - before <= CATCH_UP_FRAMES:
                    break
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
        except Exception as error:  # retried next round; the WAL keeps the data meanwhile
            # Another process holding the file (one migrating it while this one starts beside
            # it, a backup) is no failure to report: the next round will do.
            busy = getattr(getattr(error, "orig", None), "sqlite_errorname", None) == "SQLITE_BUSY"
            if busy:
                log.debug("WAL checkpoint skipped: the database is busy")
            else:
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
