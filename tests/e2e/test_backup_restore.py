"""`priorizer backup` and `priorizer restore`, as real processes, on SQLite and on PostgreSQL:
what they refuse, and the bugs found.

- `backup` refuses to overwrite a file, and `restore` a database with content (assets, nodes or
  allocations), unless --force, and then change nothing; with --force the content is the
  backup's, row for row.
- `restore` of a file that is not a Priorizer backup fails naming it, with or without --force,
  and leaves the database as it was.
- Bugs these tests found (a damaged backup restored anyway, a failed backup destroying the
  previous one, paths with `#` or `?`, counts not of the dump) have tests of their own.

Every database is read with SQLAlchemy directly; servers are
`tests.support.priorizer_server.PriorizerServer`.
PostgreSQL tests are skipped loudly when no PostgreSQL answers or pg_dump/pg_restore are missing.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.backup import (
    Db,
    dump,
    known_bug,
    last_json,
    no_traceback,
    output,
    seed,
    small_content,
    sqlite_db,
)
from tests.support.priorizer_server import describe, run_cli

pytestmark = pytest.mark.slow


def content_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("assets", "nodes", "allocations")
            }
    finally:
        engine.dispose()


# --- the tests -------------------------------------------------------------------------------


def test_backup_and_restore_overwrite_nothing_unless_forced(
    new_database: Callable[[str], Db], tmp_path: Path
) -> None:
    db = new_database("db")
    seed(db, *small_content("src"))
    counts = {"assets": 12, "nodes": 2, "allocations": 6}
    assert content_counts(db.url) == counts
    wanted = dump(db.url)

    # `backup` onto an existing file: refused, the file untouched; with --force, replaced.
    backup_file = tmp_path / "db.backup"
    original = random.Random(9).randbytes(4096)
    backup_file.write_bytes(original)
    refused = run_cli(["backup", str(backup_file)], db.env)
    assert refused.returncode == 1, describe(refused)
    assert "--force" in output(refused), describe(refused)
    no_traceback(refused)
    assert backup_file.read_bytes() == original, "a refused backup touched the file"
    forced = run_cli(["backup", "--force", str(backup_file)], db.env)
    assert forced.returncode == 0, describe(forced)
    no_traceback(forced)
    written = last_json(forced)
    assert str(backup_file) in written.values(), written
    assert written["bytes"] == backup_file.stat().st_size, written
    assert {k: written[k] for k in counts if k in written}.items() <= counts.items(), written

    def restore_refused() -> None:
        before = dump(db.url)
        result = run_cli(["restore", str(backup_file)], db.env)
        assert result.returncode == 1, describe(result)
        assert "--force" in output(result), describe(result)
        no_traceback(result)
        assert dump(db.url) == before, "a refused restore changed the database"

    # `restore` over content: a single node is content already...
    engine = create_engine(db.url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM allocations"))
        conn.execute(text("DELETE FROM assets"))
        conn.execute(text("DELETE FROM nodes WHERE id <> 'src-node-0'"))
    engine.dispose()
    assert content_counts(db.url) == {"assets": 0, "nodes": 1, "allocations": 0}
    restore_refused()

    # ... and so is another catalog, with its nodes and allocations (imported, as the catalog
    # is empty, by a first start).
    seed(db, *small_content("other", 20))
    assert content_counts(db.url) == {"assets": 20, "nodes": 3, "allocations": 10}
    restore_refused()

    # With --force, the content is the backup's, row for row.
    restored = run_cli(["restore", "--force", str(backup_file)], db.env)
    assert restored.returncode == 0, describe(restored)
    no_traceback(restored)
    assert dump(db.url) == wanted, "after restore --force, the database is the backup's"


def not_backups(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    noise = directory / "noise.backup"
    noise.write_bytes(random.Random(5).randbytes(64 * 1024))
    empty = directory / "empty.sqlite3"
    empty.write_bytes(b"")  # what sqlite3 opens as a database without tables
    other = directory / "other.sqlite3"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)")
    connection.execute("INSERT INTO things (name) VALUES ('not priorizer')")
    connection.commit()
    connection.close()
    return {
        "random bytes": noise,
        "an empty SQLite file": empty,
        "another SQLite database": other,
        "a missing file": directory / "missing.backup",
    }


def test_restore_of_a_file_that_is_not_a_backup_fails_naming_it(
    new_database: Callable[[str], Db], tmp_path: Path
) -> None:
    db = new_database("db")
    seed(db, [], [])
    files = not_backups(tmp_path / "files")
    unnamed = []

    def fails(args: list[str], what: str, path: Path) -> None:
        before = dump(db.url)
        result = run_cli([*args, str(path)], db.env)
        assert result.returncode == 1, f"{what}: {describe(result)}"
        no_traceback(result)
        assert dump(db.url) == before, f"{what}: a failed restore changed the database"
        if str(path) not in output(result):
            errors = [line for line in output(result).splitlines() if "error" in line.lower()]
            unnamed.append(f"{what}: {errors or output(result).strip()}")

    # Into an empty database: nothing to force, the file itself is refused.
    for what in ("random bytes", "an empty SQLite file"):
        fails(["restore"], what, files[what])
    # Over content with --force: refused before anything is replaced.
    seed(db, *small_content("tgt"))
    for what in ("random bytes", "another SQLite database", "a missing file"):
        fails(["restore", "--force"], what, files[what])
    known_bug(not unnamed, f"the error does not name the file: {unnamed}")


# --- bugs found (fixed) ---------------------------------------------------------------------------


def damaged(backup_file: Path) -> dict[str, Path]:
    """A good backup, cut short and with 8 KiB overwritten in its middle."""
    data = backup_file.read_bytes()
    cut = backup_file.with_name("cut-short.backup")
    cut.write_bytes(data[:-200])
    middle = len(data) // 2
    overwritten = backup_file.with_name("overwritten.backup")
    overwritten.write_bytes(data[:middle] + b"\xff" * 8192 + data[middle + 8192 :])
    return {"cut short": cut, "overwritten": overwritten}


def test_restore_of_a_damaged_backup_fails_and_changes_nothing(
    new_database: Callable[[str], Db], tmp_path: Path
) -> None:
    """A backup damaged in transit or storage must not replace a good database."""
    source = new_database("source")
    seed(source, *small_content("src", 600))
    backup_file = tmp_path / "good.backup"
    made = run_cli(["backup", str(backup_file)], source.env)
    assert made.returncode == 0, describe(made)
    db = new_database("db")
    seed(db, *small_content("tgt"))
    before = dump(db.url)

    for what, path in damaged(backup_file).items():
        result = run_cli(["restore", "--force", str(path)], db.env)
        assert result.returncode == 1, f"{what}: {describe(result)}"
        no_traceback(result)
        after = dump(db.url)
        assert after == before, (
            f"{what}: a failed restore changed the database: "
            f"{ {t: len(r) for t, r in before.items()} } rows before, "
            f"{ {t: len(r) for t, r in after.items()} } after"
        )
        assert str(path) in output(result), f"{what}: {describe(result)}"


def test_backup_of_a_database_that_does_not_exist_fails_and_keeps_the_old_backup(
    new_database: Callable[[str], Db], tmp_path: Path
) -> None:
    """A backup job with a wrong DATA_DIRECTORY or DATABASE_URL (or the database down) must
    fail loudly, not write an empty backup, nor destroy the last good one it was to replace."""
    db = new_database("db")
    previous = tmp_path / "latest.backup"
    previous.write_bytes(b"the last good backup")
    if db.url.startswith("sqlite"):
        db.data_directory.mkdir(parents=True)  # the directory is there, the database is not
        env = db.env
    else:
        env = {**db.env, "DATABASE_URL": db.url.rsplit("/", 1)[0] + "/no_such_database"}

    result = run_cli(["backup", "--force", str(previous)], env)
    assert result.returncode == 1, describe(result)
    no_traceback(result)
    assert previous.read_bytes() == b"the last good backup", "a failed backup destroyed FILE"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["latest.backup"]
    if db.url.startswith("sqlite"):
        assert not any(db.data_directory.iterdir()), "backup created files in DATA_DIRECTORY"


def test_sqlite_backup_at_any_path_restores_and_leaves_only_the_file(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    source = sqlite_db(root / "source")
    seed(source, *small_content("src"))
    backups = root / "backups"
    backups.mkdir()
    backup_file = backups / "nightly #1?.backup"

    made = run_cli(["backup", str(backup_file)], source.env)
    assert made.returncode == 0, describe(made)
    assert last_json(made)["assets"] == 12, describe(made)
    target = sqlite_db(root / "target")
    restored = run_cli(["restore", str(backup_file)], target.env)
    assert restored.returncode == 0, describe(restored)
    assert sorted(p.name for p in backups.iterdir()) == [backup_file.name]
    assert dump(target.url) == dump(source.url)
