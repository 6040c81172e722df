"""Shared fixtures: a real database for every test, on SQLite and on PostgreSQL.

- SQLite: a fresh file per test, copied from a template migrated once per session.
- PostgreSQL: one database per session (`PRIORIZER_TEST_PG_URL`, default the local server),
  migrated once; every table is truncated before each test. Where no PostgreSQL answers,
  those tests are skipped with the reason printed, never run against something else.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from priorizer.config import Settings
from priorizer.db import Database, migrate
from priorizer.models import metadata
from priorizer.startup import prepare
from priorizer.web.app import create_app

PG_ADMIN_URL = os.environ.get(
    "PRIORIZER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _pg_unavailable_reason() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:
        return f"PostgreSQL at {PG_ADMIN_URL} does not answer ({type(error).__name__}: {error})"
    return None


_PG_REASON: str | None = None
_PG_CHECKED = False


def pg_skip_reason() -> str | None:
    global _PG_REASON, _PG_CHECKED
    if not _PG_CHECKED:
        _PG_REASON, _PG_CHECKED = _pg_unavailable_reason(), True
    return _PG_REASON


def pytest_report_header(config: pytest.Config) -> str:
    reason = pg_skip_reason()
    if reason:
        return f"!!! POSTGRESQL TESTS WILL BE SKIPPED: {reason} !!!"
    return f"postgresql: {PG_ADMIN_URL}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reason = pg_skip_reason()
    if reason:
        terminalreporter.section("POSTGRESQL NOT TESTED", sep="!", red=True, bold=True)
        terminalreporter.write_line(f"Every PostgreSQL test was skipped: {reason}")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    migrate(f"sqlite:///{path}")
    return path


def create_pg_database(prefix: str) -> str:
    """A new, empty PostgreSQL database; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    reason = pg_skip_reason()
    if reason:
        pytest.skip(reason)
    url = create_pg_database(f"priorizer_test_{os.getpid()}")
    migrate(url)
    yield url
    drop_pg_database(url)


def truncate_all(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        names = ", ".join(table.name for table in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "priorizer.sqlite3"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_session_url")
    truncate_all(url)
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_settings(db_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": db_url,
        "data_directory": tmp_path / "data",
        "run_scheduler": False,
    }
    values.update(overrides)
    return Settings.of(**values)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path)


@pytest.fixture
def database(settings: Settings, clock: FakeClock) -> Iterator[Database]:
    prepare(settings, now=clock())
    db = Database(settings.sqlalchemy_url)
    yield db
    db.dispose()


@pytest.fixture
def client(settings: Settings, clock: FakeClock, database: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, clock=clock)) as test_client:
        yield test_client


@pytest.fixture
def start_service(
    db_url: str, tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[..., tuple[TestClient, Database, Settings]]]:
    """Start the service with non-default settings: `start_service(replication_target=1)`
    gives its (client, database, settings); all are closed when the test ends."""
    with ExitStack() as stack:

        def start(**overrides: object) -> tuple[TestClient, Database, Settings]:
            settings = make_settings(db_url, tmp_path, **overrides)
            prepare(settings, now=clock())
            database = Database(settings.sqlalchemy_url)
            stack.callback(database.dispose)
            client = stack.enter_context(TestClient(create_app(settings, clock=clock)))
            return client, database, settings

        yield start


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test has a node id of its own: pytest-xdist tells tests apart by node id, and of
    tests sharing one it would run only one, silently. Schemathesis names the test of each API
    operation (`test_api_conforms_to_its_schema[GET /nodes]`) but, under pytest 9.2, gives them
    all the function's id; each gets its operation in its id (pytest keeps ids in `_id`, and has
    no public way to set one after collection). Any other id seen twice stops the run."""
    for item in items:
        label = getattr(item, "operation_label", None)
        if label is not None and not item.nodeid.endswith("]"):
            item._id = item._id.with_params(label)  # type: ignore[attr-defined]
    twice = [nodeid for nodeid, n in Counter(item.nodeid for item in items).items() if n > 1]
    if twice:
        raise pytest.UsageError(f"tests share a node id (xdist would run one of each): {twice}")
