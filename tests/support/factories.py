"""Small builders for test data, writing through the services like the real entry points."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from priorizer.allocation import service as allocation_service
from priorizer.allocation.service import Lease
from priorizer.catalog import service as catalog_service
from priorizer.catalog.service import NewAsset
from priorizer.config import Settings
from priorizer.db import Database
from priorizer.maintenance.service import cap_limits
from priorizer.queue.policy import queue_policy


def asset(n: int | str, **overrides: Any) -> NewAsset:
    values: dict[str, Any] = {
        "id": f"asset-{n}",
        "url": f"https://data.example.org/files/{n}.zip",
        "name": f"file-{n}.zip",
        "size_mb": 100.0,
        "priority": 5,
    }
    values.update(overrides)
    return NewAsset(**values)


def add_assets(
    database: Database, settings: Settings, items: list[NewAsset], now: datetime
) -> None:
    with database.write() as session:
        catalog_service.upsert_assets(session, items=items, queue=queue_policy(settings), now=now)


def allocate_in(
    session: Session,
    settings: Settings,
    now: datetime,
    *,
    node_id: str,
    free_space_gb: float,
    max_assets: int | None = None,
    lease_seconds: float | None = None,
) -> list[Lease]:
    """`allocation.service.allocate` in the caller's transaction, with the settings' policy."""
    return allocation_service.allocate(
        session,
        node_id=node_id,
        free_space_gb=free_space_gb,
        queue=queue_policy(settings),
        max_assets=max_assets or settings.max_assets_per_allocation,
        limits=cap_limits(settings),
        lease_seconds=lease_seconds or settings.allocation_expiry_seconds,
        failed_retry_seconds=settings.failed_retry_seconds,
        now=now,
    )


def table_snapshot(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove a refused request changed nothing."""
    from sqlalchemy import select

    from priorizer.models import metadata

    with database.read() as session:
        return {
            table.name: sorted(
                (tuple(map(repr, row)) for row in session.execute(select(table))), key=str
            )
            for table in metadata.sorted_tables
        }
