"""SQLite group commit (`db.writers.GroupCommit`): /allocate calls made together share one
transaction, and each gets exactly what it would have got alone, in that order."""

from __future__ import annotations

import asyncio
import functools
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from priorizer.config import Settings
from priorizer.db import Database
from priorizer.errors import Invalid
from tests.conftest import make_settings
from tests.support.factories import add_assets, allocate_in, asset, table_snapshot

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def catalog() -> list[Any]:
    """60 assets of many sizes and priorities, a few of unknown size."""
    return [
        asset(n, size_mb=None if n % 13 == 0 else 50.0 + (n * 37) % 900, priority=1 + n % 10)
        for n in range(60)
    ]


@pytest.fixture
def twin(
    tmp_path: Path, sqlite_template: Path
) -> Iterator[Callable[[str], tuple[Database, Settings]]]:
    """Databases holding the same catalog, one per name."""
    opened: list[Database] = []

    def make(name: str) -> tuple[Database, Settings]:
        path = tmp_path / f"{name}.sqlite3"
        shutil.copy(sqlite_template, path)
        settings = make_settings(f"sqlite:///{path}", tmp_path / name, replication_target=2)
        database = Database(settings.sqlalchemy_url)
        opened.append(database)
        add_assets(database, settings, catalog(), NOW)
        return database, settings

    yield make
    for database in opened:
        database.dispose()


def failing(settings: Settings, session: Session) -> Any:
    """A request that writes, then fails: all it wrote must be undone, nothing else."""
    allocate_in(session, settings, NOW, node_id="node-fails", free_space_gb=3)
    raise Invalid("refused after writing")


def requests(settings: Settings) -> list[Callable[[Session], Any]]:
    """Nodes asking in turn, some twice (their budget counts what they got first), one
    failing halfway, and late ones that find the top of the queue taken."""
    calls: list[Callable[[Session], Any]] = []
    for i, (node, gb) in enumerate(
        [("a", 2), ("b", 1.5), ("a", 4), ("c", 0.3), ("d", 6), ("b", 1.5), ("e", 3), ("f", 9)]
    ):
        calls.append(
            functools.partial(
                allocate_in,
                settings=settings,
                now=NOW + timedelta(seconds=i),
                node_id=f"node-{node}",
                free_space_gb=gb,
            )
        )
        if i == 3:
            calls.append(functools.partial(failing, settings))
    return calls


def outcome(result: Any) -> Any:
    if isinstance(result, BaseException):
        return (type(result).__name__, str(result))
    return [
        (lease.asset["id"], lease.allocation_id, lease.node_id, lease.expires_at, lease.reserved_mb)
        for lease in result
    ]


def alone(database: Database, calls: list[Callable[[Session], Any]]) -> list[Any]:
    """Each call in a transaction of its own, one after the other."""
    results: list[Any] = []
    for call in calls:
        try:
            with database.write() as session:
                results.append(call(session))
        except Invalid as error:
            results.append(error)
    return results


async def together(database: Database, calls: list[Callable[[Session], Any]]) -> list[Any]:
    """Every call submitted at once, as concurrent requests on one event loop are."""
    return await asyncio.gather(
        *(database.run_write(call) for call in calls), return_exceptions=True
    )


def count_commits(database: Database) -> list[int]:
    commits = [0]
    event.listen(
        database.write_engine, "commit", lambda _conn: commits.__setitem__(0, commits[0] + 1)
    )
    return commits


def test_a_batch_gives_each_request_what_it_would_have_got_alone_in_that_order(twin) -> None:
    grouped, grouped_settings = twin("grouped")
    serial, serial_settings = twin("serial")
    commits = count_commits(grouped)

    batched = asyncio.run(together(grouped, requests(grouped_settings)))
    one_by_one = alone(serial, requests(serial_settings))

    assert commits == [1], "the nine calls shared one transaction"
    assert [outcome(r) for r in batched] == [outcome(r) for r in one_by_one]
    assert table_snapshot(grouped) == table_snapshot(serial)
    # Not vacuous: the calls got work, a node's second call counted its first, one failed.
    leases = [r for r in batched if not isinstance(r, BaseException)]
    assert sum(len(r) for r in leases) >= 20
    assert isinstance(batched[4], Invalid)
    first_a = sum(lease.reserved_mb for lease in batched[0])
    assert sum(lease.reserved_mb for lease in batched[2]) <= 4 * 1024 - first_a
    with grouped.read() as session:
        failed_node = session.execute(
            text("SELECT count(*) FROM nodes WHERE id = 'node-fails'")
        ).scalar_one()
    assert failed_node == 0, "the failed call's writes were undone"


def test_no_request_is_answered_before_the_batch_is_committed(twin) -> None:
    database, settings = twin("grouped")
    path = database.url.split("///", 1)[1]
    seen_by_others: list[int] = []
    answered: list[int] = []

    def look_from_outside(session: Session) -> list[Any]:
        """Runs last in the batch: another connection sees none of the batch's leases yet,
        and no earlier call has been answered."""
        import sqlite3

        with sqlite3.connect(path) as other:
            seen_by_others.append(other.execute("SELECT count(*) FROM allocations").fetchone()[0])
        assert answered == [], "a call was answered before the commit"
        return []

    async def run() -> None:
        async def call(i: int, work: Callable[[Session], Any]) -> None:
            await database.run_write(work)
            answered.append(i)

        calls = [*requests(settings)[:3], look_from_outside]
        await asyncio.gather(*(call(i, work) for i, work in enumerate(calls)))

    asyncio.run(run())
    assert seen_by_others == [0]
    assert sorted(answered) == [0, 1, 2, 3]
    with database.read() as session:
        assert session.execute(text("SELECT count(*) FROM allocations")).scalar_one() > 0


def test_when_the_commit_fails_every_request_of_the_batch_fails_and_nothing_is_written(
    twin,
) -> None:
    database, settings = twin("grouped")
    before = table_snapshot(database)

    def breaks_the_commit(session: Session) -> list[Any]:
        """A lease on an asset that does not exist, its foreign key checked only at COMMIT."""
        session.execute(text("PRAGMA defer_foreign_keys = ON"))
        session.execute(
            text(
                "INSERT INTO allocations (asset_id, node_id, status, reserved_mb, allocated_at, "
                "renewed_at, expires_at) VALUES ('no-such-asset', 'node-x', 'allocated', 1, "
                ":now, :now, :now)"
            ),
            {"now": NOW.replace(tzinfo=None)},
        )
        return []

    calls = [*requests(settings)[:3], breaks_the_commit]
    results = asyncio.run(together(database, calls))

    assert all(isinstance(result, IntegrityError) for result in results), results
    assert table_snapshot(database) == before
