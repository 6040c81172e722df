"""Catalog rows, allocation records and helpers shared by the seed JSON tests
(tests/service/test_seed_json_*.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from priorizer.allocation.models import Allocation
from priorizer.catalog.models import Asset, Dataset
from priorizer.db import Database
from priorizer.models import metadata
from priorizer.queue.policy import queue_policy
from priorizer.seed import service as seed_service

CKAN_ROWS: list[dict[str, Any]] = [
    {
        "id": "res-1",
        "url": "https://data.example.org/d1/temperature.csv",
        "name": "temperature.csv",
        "size_mb": 12.5,
        "priority": 9,
        "dataset_id": "ds-1",
        "format": "CSV",
        # Fields the seed had that we do not model: they must come back out of an export.
        "resource_type": "file.upload",
        "tags": ["climate", "alps"],
        "checksum": None,
        "size_bytes": 13107200,
        "metadata": {"license": "CC-BY-4.0", "years": [2019, 2020]},
    },
    {
        "id": "res-2",
        "url": "https://data.example.org/d1/readme.pdf",
        "name": "readme.pdf",
        "size_mb": None,
        "priority": 4,
    },
    {
        "id": "res-3",
        "url": "https://data.example.org/d2/snow_depth.nc",
        "name": "snow_depth.nc",
        "size_mb": 2048,
        "priority": 7,
        "dataset_id": "ds-2",
        "last_modified": "2024-11-02T08:00:00",
    },
]

ALLOCATION_RECORDS: list[dict[str, Any]] = [
    {"asset_id": "res-1", "node_id": "node-a", "allocated_at": "2026-01-15T06:30:00"},
    {"asset_id": "res-1", "node_id": "node-b", "status": "completed"},
    {"asset_id": "res-3", "node_id": "node-a", "status": "allocated"},
]


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def meaningful(database: Database, *, drop: tuple[str, ...] = ("updated_at",)) -> dict[str, Any]:
    """Every row of every table as a dict, without the columns named in `drop`."""
    with database.read() as session:
        return {
            table.name: sorted(
                (
                    {k: v for k, v in row._mapping.items() if k not in drop}
                    for row in session.execute(select(table))
                ),
                key=repr,
            )
            for table in metadata.sorted_tables
        }


def assets_by_id(database: Database) -> dict[str, Any]:
    """Asset rows (plain rows: they outlive the read transaction)."""
    with database.read() as session:
        return {row.id: row for row in session.execute(select(Asset.__table__)).all()}


def allocations(database: Database) -> list[Any]:
    with database.read() as session:
        table = Allocation.__table__
        return list(session.execute(select(table).order_by(table.c.id)).all())


def import_rows(database, settings, now, assets: Any, records: Any = None):
    """The service-level import: parse, then write in one transaction."""
    parsed_assets = seed_service.parse_assets(assets, source="ckan")
    parsed_records = seed_service.parse_allocations(records or [], source="allocations")
    with database.write() as session:
        return seed_service.import_seed(
            session,
            assets=parsed_assets,
            allocations=parsed_records,
            queue=queue_policy(settings),
            lease_seconds=settings.allocation_expiry_seconds,
            now=now,
        )


def datasets_by_id(database: Database) -> dict[str, Any]:
    with database.read() as session:
        return {row.id: row for row in session.execute(select(Dataset.__table__)).all()}
