"""The in-process driver: the real services on a temporary database of the configured kind (a
SQLite file in a temporary directory, or a PostgreSQL database created for the run and dropped
after it), with a simulated clock. The operator's own database is never opened."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from priorizer.allocation import lifecycle
from priorizer.allocation import service as allocation_service
from priorizer.catalog import service as catalog_service
from priorizer.catalog.service import NewAsset
from priorizer.config import Settings
from priorizer.db import Database
from priorizer.maintenance import jobs as maintenance_jobs
from priorizer.maintenance.service import MaintenancePolicy
from priorizer.queue.policy import queue_policy
from priorizer.simulate.fleet import Download, Grant
from priorizer.simulate.scenario import SimulationError
from priorizer.startup import prepare

# Simulated time 0. Any instant would do: nothing depends on the calendar.
START = datetime(2030, 1, 1, tzinfo=UTC)
FAILURE_REASON = "simulated failure"


def moment(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


class LocalDriver:
    """Each request is one transaction, as a route would run it (a node's reports of one
    round share one)."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.queue = queue_policy(settings)
        self.maintenance = MaintenancePolicy.from_settings(settings, self.queue)

    def load(self, assets: Sequence[NewAsset]) -> None:
        """The catalog, in one transaction (as `priorizer import-json` loads it)."""
        with self.database.write() as session:
            catalog_service.upsert_assets(session, items=assets, queue=self.queue, now=START)

    def allocate(self, *, node_id: str, free_space_gb: float, now: float) -> list[Grant]:
        with self.database.write() as session:
            leases = allocation_service.allocate(
                session,
                node_id=node_id,
                free_space_gb=free_space_gb,
                queue=self.queue,
                max_assets=self.settings.max_assets_per_allocation,
                limits=self.maintenance.caps,
                lease_seconds=self.settings.allocation_expiry_seconds,
                failed_retry_seconds=self.settings.failed_retry_seconds,
                now=moment(now),
            )
        return [Grant(lease.asset["id"], _disk_mb(lease)) for lease in leases]

    def settle(self, *, node_id: str, downloads: Sequence[Download], now: float) -> None:
        at = moment(now)
        with self.database.write() as session:
            for download in downloads:
                if download.fails:
                    lifecycle.fail(
                        session,
                        asset_id=download.asset_id,
                        node_id=node_id,
                        reason=FAILURE_REASON,
                        reason_code=None,  # unspecified, as the remote driver sends it
                        queue=self.queue,
                        limits=self.maintenance.caps,
                        failure_threshold=self.settings.failure_threshold,
                        now=at,
                    )
                else:
                    lifecycle.complete(
                        session,
                        asset_id=download.asset_id,
                        node_id=node_id,
                        checksum_sha256=None,
                        magnet_link=None,
                        size_mb=None,
                        queue=self.queue,
                        limits=self.maintenance.caps,
                        size_tolerance=self.settings.size_tolerance,
                        failure_threshold=self.settings.failure_threshold,
                        now=at,
                    )

    def hello(self, *, node_id: str, now: float) -> None:
        # A renewal of no lease: the node is seen, and no lease lives longer than it would.
        with self.database.write() as session:
            lifecycle.renew(
                session,
                node_id=node_id,
                asset_ids=[],
                lease_seconds=self.settings.allocation_expiry_seconds,
                now=moment(now),
            )

    def maintain(self, *, now: float) -> dict[str, Any] | None:
        record = maintenance_jobs.run_cycle(
            database=self.database, policy=self.maintenance, clock=lambda: moment(now)
        )
        return None if record is None else record.get("steps")


def _disk_mb(lease: allocation_service.Lease) -> float:
    size = lease.asset.get("size_mb")
    return lease.reserved_mb if size is None else float(size)


@contextmanager
def local_driver(settings: Settings) -> Iterator[LocalDriver]:
    """A driver on a fresh, migrated temporary database, removed when the block ends."""
    with (
        temporary_database(settings) as url,
        tempfile.TemporaryDirectory(prefix="priorizer-simulate-") as data,
    ):
        # An empty data directory of its own: nothing is imported at the first start.
        own = settings.model_copy(update={"database_url": url, "data_directory": Path(data)})
        prepare(own, now=START)
        database = Database(url)
        try:
            yield LocalDriver(own, database)
        finally:
            database.dispose()


@contextmanager
def temporary_database(settings: Settings) -> Iterator[str]:
    """The URL of a new, empty database of the configured kind, dropped afterwards."""
    configured = settings.database_url
    if configured is None or configured.startswith("sqlite"):
        with tempfile.TemporaryDirectory(prefix="priorizer-simulate-db-") as directory:
            yield f"sqlite:///{Path(directory) / 'simulation.sqlite3'}"
        return
    with _postgresql_database(configured) as url:
        yield url


@contextmanager
def _postgresql_database(configured: str) -> Iterator[str]:
    server = make_url(configured)
    name = f"priorizer_simulate_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except SQLAlchemyError as error:
            reason = getattr(error, "orig", None) or error
            raise SimulationError(
                f"cannot create a temporary database on {server.render_as_string()} for the "
                f"simulation ({type(reason).__name__}: {reason}); it needs the CREATEDB "
                "privilege there, or run it on SQLite (DATABASE_URL unset)"
            ) from error
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
