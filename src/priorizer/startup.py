"""What happens once before serving: migrate, re-rank if the queue policy changed, and load
the seed's JSON files (or the demo catalog) into an empty database. Also how CLI commands open
the database: those that write migrate it quietly; those that only read never create or
migrate one. A database that cannot be reached or created is one line naming the setting."""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime
from importlib import resources
from pathlib import Path

from sqlalchemy import create_engine, pool
from sqlalchemy.exc import DBAPIError

from priorizer.allocation import service as allocation_service
from priorizer.catalog import service as catalog_service
from priorizer.clock import utcnow
from priorizer.config import Settings, mask_password
from priorizer.db import Database, alembic_config, migrate, sqlite_path
from priorizer.errors import PriorizerError
from priorizer.queue.policy import QueuePolicy, queue_policy
from priorizer.seed import service as seed_service
from priorizer.seed.service import ImportReport

log = logging.getLogger(__name__)

# Any constant will do: it names the advisory lock processes take around start-up (PostgreSQL).
STARTUP_LOCK = 74_251_001


class StorageProblem(PriorizerError):
    """The configured database cannot be used; the message names the setting at fault."""


class NoDatabase(PriorizerError):
    """A command that only reads found no Priorizer database to read."""


def prepare(settings: Settings, *, demo: bool = False, now: datetime | None = None) -> None:
    """Before serving: migrate, apply this server's queue policy, first-start import."""
    now = now or utcnow()
    database, _queue = _open(settings, now=now, owner=True, demo=demo)
    database.dispose()


def open_to_read(settings: Settings) -> Database:
    """For commands that only read: the database as it is, never created nor migrated."""
    path = sqlite_path(settings.sqlalchemy_url)
    where = path or mask_password(settings.sqlalchemy_url)
    revision = None
    if path is None or Path(path).is_file():
        revision = schema_revision(settings)
    if revision is None:
        raise NoDatabase(
            f"no Priorizer database at {where} ({_setting_of(settings)}): nothing to read; "
            "`priorizer serve` or `priorizer import-json` creates one"
        )
    head = schema_head(settings)
    if revision != head:
        raise NoDatabase(
            f"the database at {where} is at schema revision {revision}, not {head}: "
            "start `priorizer serve` once (or run a command that writes) to migrate it"
        )
    return Database(settings.sqlalchemy_url)


def schema_revision(settings: Settings) -> str | None:
    """The database's Alembic revision (None: no Priorizer tables), read without writing."""
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(settings.sqlalchemy_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as error:
        raise _unreachable(settings, error) from error
    finally:
        engine.dispose()


def schema_head(settings: Settings) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(settings.sqlalchemy_url)).get_current_head()


def check_storage(settings: Settings) -> None:
    """Before a database is opened to write: its SQLite folder can be made and written in, or
    its server answers (a named setting and the reason otherwise, not a traceback)."""
    path = sqlite_path(settings.sqlalchemy_url)
    if path is None:
        schema_revision(settings)  # connects, or says why it cannot
        return
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".priorizer-probe-"):
            pass
    except FileExistsError as error:
        raise StorageProblem(f"{_setting_of(settings)}: {folder} is not a folder") from error
    except OSError as error:
        raise StorageProblem(
            f"{_setting_of(settings)}: cannot write in {folder}: {error.strerror or error}"
        ) from error


def _setting_of(settings: Settings) -> str:
    if settings.database_url:
        return "DATABASE_URL"
    return f"DATA_DIRECTORY={settings.data_directory}"


def _unreachable(settings: Settings, error: DBAPIError) -> StorageProblem:
    reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
    where = mask_password(settings.sqlalchemy_url)
    name = "DATABASE_URL" if settings.database_url else "DATA_DIRECTORY"
    return StorageProblem(f"{name}: cannot open the database {where}: {reason}")


def open_for_command(
    settings: Settings, *, now: datetime | None = None
) -> tuple[Database, QueuePolicy]:
    """For CLI commands, which may run beside a serving server: migrate, and keep the queue
    policy the catalog was ranked with (a command's environment must not re-rank a catalog
    that a server is handing out). No first-start import: the command says what to load."""
    return _open(settings, now=now or utcnow(), owner=False, demo=False)


def _open(
    settings: Settings, *, now: datetime, owner: bool, demo: bool
) -> tuple[Database, QueuePolicy]:
    check_storage(settings)
    database = Database(settings.sqlalchemy_url)
    try:
        # One process at a time migrates and loads a first catalog (servers starting together).
        with database.exclusive("startup", key=STARTUP_LOCK, wait=True):
            _migrate(settings, loudly=owner)
            with database.write() as session:
                stored = None if owner else allocation_service.stored_queue_policy(session)
                queue = stored or queue_policy(settings)
                allocation_service.ensure_queue_policy(session, queue=queue, now=now)
            if owner:
                _first_start_import(database, settings, demo=demo, now=now)
    except BaseException:
        database.dispose()
        raise
    return database, queue


def _migrate(settings: Settings, *, loudly: bool) -> None:
    """Alembic's own lines are kept out of the output (`logs.configure`): one of ours says what
    changed, at INFO for a server, at DEBUG for a command."""
    before = schema_revision(settings)
    migrate(settings.sqlalchemy_url)
    after = schema_revision(settings)
    if after != before:
        log.log(
            logging.INFO if loudly else logging.DEBUG,
            "database schema migrated from %s to %s",
            before or "nothing",
            after,
        )


def _first_start_import(
    database: Database, settings: Settings, *, demo: bool, now: datetime
) -> None:
    with database.read() as session:
        if catalog_service.count_assets(session):
            return
    ckan = settings.data_directory / settings.ckan_data_file
    allocations = settings.data_directory / settings.allocations_file
    if ckan.is_file():
        report = import_files(
            database, settings, ckan, allocations if allocations.is_file() else None, now=now
        )
        log.info("first start: imported %s", report)
    elif demo:
        demo_file = resources.files("priorizer.seed") / "demo_ckan_data.json"
        with resources.as_file(demo_file) as path:
            report = import_files(database, settings, path, None, now=now)
        log.info("demo catalog loaded: %d assets", report.assets_created)


def import_files(
    database: Database,
    settings: Settings,
    ckan_file: Path,
    allocations_file: Path | None,
    *,
    now: datetime,
    queue: QueuePolicy | None = None,
) -> ImportReport:
    """Validate both files whole, then write them in one transaction (all or nothing)."""
    assets = seed_service.parse_assets(seed_service.read_json(ckan_file), source=str(ckan_file))
    allocations = (
        seed_service.parse_allocations(
            seed_service.read_json(allocations_file), source=str(allocations_file)
        )
        if allocations_file is not None
        else []
    )
    with database.write() as session:
        return seed_service.import_seed(
            session,
            assets=assets,
            allocations=allocations,
            queue=queue or queue_policy(settings),
            lease_seconds=settings.allocation_expiry_seconds,
            now=now,
        )
