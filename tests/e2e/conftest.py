"""Fixtures shared by the backup tests (tests/e2e/test_backup_*.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import create_pg_database, drop_pg_database, pg_skip_reason
from tests.support.backup import Db, pg_tools_missing_reason, sqlite_db


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Db]]:
    """Makes fresh, empty databases of one kind: `new_database("name")`. SQLite: a new
    DATA_DIRECTORY (no file yet); PostgreSQL: a new database (no table yet), dropped after."""
    created: list[str] = []
    if request.param == "postgresql":
        reason = pg_skip_reason()
        if reason:
            pytest.skip(f"POSTGRESQL NOT TESTED: {reason}")
        reason = pg_tools_missing_reason()
        if reason:
            pytest.skip(f"POSTGRESQL BACKUPS NOT TESTED: {reason}")

    def make(name: str) -> Db:
        data_directory = (tmp_path / name / "data").resolve()
        env = {"DATA_DIRECTORY": str(data_directory)}
        if request.param == "sqlite":
            return sqlite_db(data_directory)
        url = create_pg_database(f"priorizer_backup_{name.replace('-', '_')}")
        created.append(url)
        return Db({**env, "DATABASE_URL": url}, url, data_directory)

    try:
        yield make
    finally:
        for url in created:
            drop_pg_database(url)
