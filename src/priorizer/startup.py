"""What happens once before serving: migrate, re-rank if the queue policy changed, and load
the seed's JSON files (or the demo catalog) into an empty database."""

from __future__ import annotations

import logging
from datetime import datetime
from importlib import resources
from pathlib import Path

from priorizer.allocation.policy import QueuePolicy
from priorizer.app import queue_policy, utcnow
from priorizer.catalog import service as catalog_service
from priorizer.config import Settings
from priorizer.db import Database, migrate
from priorizer.seed import service as seed_service
from priorizer.seed.service import ImportReport
from priorizer.system import service as system_service

log = logging.getLogger(__name__)

# Any constant will do: it names the advisory lock processes take around start-up (PostgreSQL).
STARTUP_LOCK = 74_251_001


def prepare(settings: Settings, *, demo: bool = False, now: datetime | None = None) -> None:
    """Before serving: migrate, apply this server's queue policy, first-start import."""
    now = now or utcnow()
    database, _queue = _open(settings, now=now, owner=True, demo=demo)
    database.dispose()


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
    database = Database(settings.sqlalchemy_url)
    try:
        # One process at a time migrates and loads a first catalog (servers starting together).
        with database.exclusive("startup", key=STARTUP_LOCK, wait=True):
            migrate(settings.sqlalchemy_url)
            with database.write() as session:
                stored = None if owner else system_service.stored_queue_policy(session)
                queue = stored or queue_policy(settings)
                system_service.ensure_queue_policy(session, queue=queue, now=now)
            if owner:
                _first_start_import(database, settings, demo=demo, now=now)
    except BaseException:
        database.dispose()
        raise
    return database, queue


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
