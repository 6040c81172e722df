"""Commands facing a database they cannot use, or none at all: one line naming the setting at
fault, and a command that only reads never creates or migrates a database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from priorizer.db import alembic_config
from tests.conftest import create_pg_database, drop_pg_database, pg_skip_reason
from tests.support.priorizer_server import PriorizerServer, describe, free_port, run_cli

pytestmark = pytest.mark.slow

DB_PASSWORD = "pg-pa55word-never-shown"
ADMIN_TOKEN = "admin-token-never-shown-0123"
ENROLLMENT_SECRET = "enrollment-secret-never-shown"
GOOD_ASSETS = [{"id": "a-1", "url": "https://data.example.org/one.csv", "priority": 7}]


def one_line_error(result, *words: str) -> str:
    """The command failed with exactly one line on stderr, naming `words`, no traceback."""
    assert result.returncode != 0, describe(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, describe(result)
    for word in words:
        assert word in lines[0], describe(result)
    assert "Traceback" not in result.stderr
    return lines[0]


def with_password(url: str, password: str) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def tables_of(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a database would be, with none there yet (PostgreSQL: an empty database)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nothing-here' / 'priorizer.sqlite3'}"
        return
    reason = pg_skip_reason()
    if reason:
        pytest.skip(reason)
    url = create_pg_database("priorizer_cli_storage")
    yield url
    drop_pg_database(url)


# --- a database that cannot be used: one line naming the setting ---------------------------------

COMMANDS = [
    ["serve"],
    ["status"],
    ["export-json", "out"],
    ["maintain"],
    ["import-json", "x.json"],
    ["backup", "copy.dump"],
    ["restore", "copy.dump"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
def test_an_unreachable_postgresql_is_one_line_naming_database_url(tmp_path, args):
    env = {
        "DATABASE_URL": f"postgresql://priorizer:{DB_PASSWORD}@127.0.0.1:{free_port()}/p",
        "PRIORIZER_PORT": str(free_port()),
    }

    result = run_cli(args, env, timeout=30, cwd=tmp_path)

    line = one_line_error(result, "DATABASE_URL", "refused")
    assert DB_PASSWORD not in result.stderr + result.stdout
    assert "priorizer:***@127.0.0.1" in line


def test_an_unknown_database_host_is_one_line_naming_database_url(tmp_path):
    env = {"DATABASE_URL": "postgresql://nowhere:1/x", "PRIORIZER_PORT": str(free_port())}

    one_line_error(run_cli(["serve"], env, timeout=30), "DATABASE_URL", "nowhere")


@pytest.mark.parametrize("args", [["serve"], ["maintain"], ["import-json", "x.json"]])
@pytest.mark.parametrize(
    ("directory", "reason"),
    [
        ("/proc/nope", "cannot write in /proc/nope"),  # cannot be created
        ("/proc", "cannot write in /proc"),  # exists, but nobody may write in it (root neither)
        ("a-file", "is not a folder"),
    ],
)
def test_an_unusable_data_directory_is_one_line_naming_it(tmp_path, args, directory, reason):
    (tmp_path / "a-file").write_text("not a folder")
    env = {"DATA_DIRECTORY": directory, "PRIORIZER_PORT": str(free_port())}

    result = run_cli(args, env, timeout=30, cwd=tmp_path)

    one_line_error(result, f"DATA_DIRECTORY={directory}", reason)


# --- commands that only read ---------------------------------------------------------------------


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["export-json", "out"]])
def test_a_reading_command_in_an_empty_folder_creates_nothing(tmp_path, args):
    result = run_cli(args, {}, cwd=tmp_path)  # DATA_DIRECTORY: ./data

    assert result.returncode == 1, describe(result)
    one_line_error(result, "no Priorizer database at", "DATA_DIRECTORY=data", "nothing to read")
    assert list(tmp_path.iterdir()) == [], "nothing was created"


@pytest.mark.parametrize("args", [["status"], ["export-json", "out"]])
def test_a_reading_command_never_creates_a_database(tmp_path, empty_db_url, args):
    before = tables_of(empty_db_url) if "postgresql" in empty_db_url else None

    result = run_cli(args, {"DATABASE_URL": empty_db_url}, cwd=tmp_path)

    assert result.returncode == 1, describe(result)
    one_line_error(result, "no Priorizer database at", "(DATABASE_URL)")
    if before is None:
        assert not Path(empty_db_url.removeprefix("sqlite:///")).parent.exists()
    else:
        assert before == set() and tables_of(empty_db_url) == set()
    assert not (tmp_path / "out").exists()


def test_a_reading_command_never_migrates_a_database(tmp_path, empty_db_url):
    if empty_db_url.startswith("sqlite"):
        Path(empty_db_url.removeprefix("sqlite:///")).parent.mkdir()
    command.upgrade(alembic_config(empty_db_url), "0003")  # as an older Priorizer left it
    before = tables_of(empty_db_url)

    result = run_cli(["status"], {"DATABASE_URL": empty_db_url}, cwd=tmp_path)

    one_line_error(result, "schema revision 0003", "priorizer serve")
    assert tables_of(empty_db_url) == before


# --- Alembic's lines stay out of command output --------------------------------------------


def test_a_command_that_migrates_does_it_quietly(tmp_path, empty_db_url):
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(GOOD_ASSETS))

    result = run_cli(["import-json", str(catalog)], {"DATABASE_URL": empty_db_url})

    assert result.returncode == 0, describe(result)
    assert "alembic" not in result.stderr.lower(), describe(result)
    assert "Running upgrade" not in result.stderr, describe(result)
    assert json.loads(result.stdout)["assets_created"] == 1
    assert "alembic_version" in tables_of(empty_db_url)


# --- secrets stay out of the server's output ----------------------------------------------------


def test_the_server_never_prints_a_secret(tmp_path, empty_db_url):
    """DEBUG logs everything, and still no token, secret or password: not in the banner, not
    in the logs of requests that carried them, not in the migration's lines."""
    url = with_password(empty_db_url, DB_PASSWORD) if "postgresql" in empty_db_url else None
    env = {
        "DEBUG": "true",
        "PRIORIZER_ADMIN_TOKEN": ADMIN_TOKEN,
        "PRIORIZER_ENROLLMENT_SECRET": ENROLLMENT_SECRET,
        **({"DATABASE_URL": url} if url else {}),
    }
    server = PriorizerServer(tmp_path, env, args=["--demo"])
    with server, server.client() as client:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert client.post("/nodes/enroll", json={}, headers=admin).status_code == 201
        enrolled = client.post(
            "/nodes/enroll", json={}, headers={"X-Enrollment-Secret": ENROLLMENT_SECRET}
        )
        assert enrolled.status_code == 201, enrolled.text
        wrong = {"Authorization": f"Bearer {ADMIN_TOKEN}x"}
        assert (
            client.post("/assets/withdraw", json={"asset_ids": []}, headers=wrong).status_code
            == 401
        )

    output = server.logs()
    assert "database schema migrated from nothing to" in output
    assert "Priorizer on http://127.0.0.1" in output
    for secret in (ADMIN_TOKEN, ENROLLMENT_SECRET, DB_PASSWORD, enrolled.json()["token"]):
        assert secret not in output


def test_status_of_an_address_holding_a_password_does_not_show_it():
    url = f"http://admin:{DB_PASSWORD}@127.0.0.1:{free_port()}"

    result = run_cli(["status", "--url", url], {})

    line = one_line_error(result, "does not answer", "http://admin:***@127.0.0.1")
    assert DB_PASSWORD not in line
