"""The storage boundary: writers' turns, the driver fast path, time formats."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from datetime import UTC, datetime

import anyio
import pytest
from sqlalchemy import select, text

from priorizer.db import Database, DriverStatement, driver_time
from priorizer.db import engine as engine_module
from priorizer.db.writers import WriterTurn
from priorizer.node.models import Node


def test_writer_turns_exclude_each_other_across_open_files(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    first, second = WriterTurn(path), WriterTurn(path)  # two open files, as two processes have
    try:
        assert first.acquire()
        assert not second.acquire(blocking=False)
        first.release()
        assert second.acquire(blocking=False)
        second.release()
    finally:
        first.close()
        second.close()


@pytest.fixture
def sqlite_database(tmp_path, sqlite_template):
    path = tmp_path / "db.sqlite3"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


def test_run_write_waits_for_a_busy_writer_then_commits(sqlite_database):
    database = sqlite_database
    now = datetime(2026, 1, 1, tzinfo=UTC)
    released = threading.Event()

    def hold_the_turn() -> None:
        with database.write():
            time.sleep(0.3)
        released.set()

    def add_node(session) -> str:
        session.add(Node(id="node-a", first_seen_at=now, last_seen_at=now))
        return "done"

    holder = threading.Thread(target=hold_the_turn)
    holder.start()
    time.sleep(0.05)
    try:
        assert anyio.run(database.run_write, add_node) == "done"
    finally:
        holder.join()
    assert released.is_set()  # it waited for the other writer instead of failing
    with database.read() as session:
        assert session.execute(select(Node.id)).scalars().all() == ["node-a"]


def test_run_write_rolls_back_when_work_fails(sqlite_database):
    database = sqlite_database
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def add_then_fail(session) -> None:
        session.add(Node(id="node-a", first_seen_at=now, last_seen_at=now))
        session.flush()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        anyio.run(database.run_write, add_then_fail)
    with database.read() as session:
        assert session.execute(select(Node.id)).scalars().all() == []
    # The turn was given back: the next writer gets it at once.
    assert anyio.run(database.run_write, lambda session: 1) == 1


def test_exclusive_locks_are_per_key_on_both_databases(database, settings):
    other = Database(settings.sqlalchemy_url)  # another process's view of the same database
    try:
        with database.exclusive("harvest", key=1) as mine:
            assert mine
            with other.exclusive("harvest", key=1) as theirs:
                assert not theirs  # the same key: taken
            with other.exclusive("harvest", key=2) as theirs:
                assert theirs  # another key of the same kind: free
        with other.exclusive("harvest", key=1) as theirs:
            assert theirs  # given back
    finally:
        other.dispose()


def test_driver_statement_binds_constants_and_names_columns(database):
    statement = DriverStatement(
        lambda _dialect: text("SELECT :a + 1 AS answer, :b AS label").bindparams(b="fixed")
    )
    with database.write() as session:
        [row] = statement.rows(session, {"a": 41})
    assert (row.answer, row.label) == (42, "fixed")


def test_driver_time_reads_back_as_the_same_instant(database):
    moment = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    insert = DriverStatement(
        lambda _dialect: text(
            "INSERT INTO nodes (id, first_seen_at, last_seen_at) VALUES ('n', :t, :t)"
        )
    )
    with database.write() as session:
        insert.execute(session, {"t": driver_time(session, moment)})
    with database.read() as session:
        node = session.get(Node, "n")
    assert node is not None
    assert node.first_seen_at == moment


def _wal_frames(database: Database) -> int:
    with database.read_engine.connect() as conn:
        _busy, frames, _copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    return frames


def test_after_a_checkpoint_round_the_next_write_starts_the_wal_over(sqlite_database):
    database = sqlite_database
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(200):
        with database.write() as session:
            session.add(Node(id=f"node-{i}", first_seen_at=now, last_seen_at=now))
    grown = _wal_frames(database)

    database.checkpoint_round()
    with database.write() as session:
        session.add(Node(id="node-last", first_seen_at=now, last_seen_at=now))

    assert grown >= 200  # one frame or more per transaction until then
    assert _wal_frames(database) < 10  # the last write started the WAL over


def test_writers_pause_only_for_what_passive_passes_could_not_catch_up_on(
    sqlite_database, monkeypatch
):
    """What writers add while a passive pass runs is copied by more passes, not under the
    writers' turn (there, the fsync grows with the pages: ~1,000 pages paused writers 25-35 ms)."""
    database = sqlite_database
    database._closing.set()  # no background rounds: this test runs the one it counts
    assert database._checkpointer is not None
    database._checkpointer.join()
    with database.write() as session:
        session.execute(text("CREATE TABLE filler (b BLOB)"))
    added_while_passing = [600, 150, 40, 10]  # frames writers add during each pass, in turn
    passes: list[tuple[str, int]] = []
    original = Database.checkpoint

    def checkpoint(self: Database, mode: str = "PASSIVE") -> tuple[int, int]:
        frames, copied = original(self, mode)
        passes.append((mode, copied))
        if mode == "PASSIVE" and added_while_passing:
            pages = added_while_passing.pop(0)
            with database.write() as session:  # one frame a page, about
                session.execute(
                    text("INSERT INTO filler VALUES (zeroblob(:n))"), {"n": pages * 4000}
                )
        return frames, copied

    monkeypatch.setattr(Database, "checkpoint", checkpoint)
    database.checkpoint_round()

    (last_mode, before), (restart, after) = passes[-2:]
    assert (last_mode, restart) == ("PASSIVE", "RESTART")
    assert len(passes) >= 4  # passes went on while each still copied hundreds of frames
    assert after - before <= 100  # the writers' pause copied only the last few


def test_a_checkpoint_finding_the_file_held_by_another_process_waits_for_the_next_round(
    tmp_path, monkeypatch, caplog
):
    """A server starting beside one that migrates a new file: its checkpoint thread finds the
    file locked (not yet in WAL mode). That is no failure to log with a traceback."""
    monkeypatch.setattr(engine_module, "BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "held.sqlite3"
    other = sqlite3.connect(path, isolation_level=None)  # the migrating process, say
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN EXCLUSIVE")
    database = Database(f"sqlite:///{path}")
    try:
        with caplog.at_level(logging.DEBUG, logger="priorizer.db.database"):
            assert database.checkpoint() == (0, 0)
        assert "database is busy" in caplog.text
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        other.execute("COMMIT")
        other.close()
        frames, copied = database.checkpoint()  # the next round does its work
        assert frames == copied
    finally:
        database.dispose()


def test_a_postgresql_pool_holds_the_size_given_and_as_many_more_at_peaks():
    database = Database("postgresql+psycopg://nobody@127.0.0.1:1/none", pool_size=3)
    try:
        pool = database.write_engine.pool
        assert (pool.size(), pool._max_overflow) == (3, 3)  # type: ignore[attr-defined]
    finally:
        database.dispose()
