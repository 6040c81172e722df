"""SQLite writers taking turns (`WriterTurn`), and concurrent writes sharing one commit
(`GroupCommit`)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from priorizer.db.database import Database

T = TypeVar("T")


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
