"""Import and export of the seed's JSON files, so an old deployment can move over (and back).

A file is read and validated whole before anything is written; a bad one is refused with the
position of the first problems, and the database is left as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from priorizer.allocation import holdings
from priorizer.allocation.holdings import Holding
from priorizer.catalog import service as catalog_service
from priorizer.catalog.service import NewAsset
from priorizer.errors import Invalid
from priorizer.queue.policy import QueuePolicy
from priorizer.seed.schemas import SeedAllocation, SeedAsset, naive_to_utc

MAX_REPORTED_PROBLEMS = 5


@dataclass(slots=True)
class ImportReport:
    assets_created: int = 0
    assets_updated: int = 0
    allocations_added: int = 0
    allocations_skipped: int = 0


def read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise Invalid(f"{path}: cannot be read: {error}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise Invalid(
            f"{path}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from error


def parse_assets(data: Any, *, source: str) -> list[SeedAsset]:
    """Rows from a list, or from an object of rows keyed by id."""
    if isinstance(data, dict):
        data = [{"id": key, **row} if isinstance(row, dict) else row for key, row in data.items()]
    rows = _validate(list[SeedAsset], data, source=source)
    _refuse_duplicates(((row.id, i) for i, row in enumerate(rows)), source=source)
    return rows


def parse_allocations(data: Any, *, source: str) -> list[SeedAllocation]:
    """Records from a list, or from an object mapping node ids to lists of asset ids."""
    if isinstance(data, dict):
        data = [
            {"node_id": node_id, **item}
            if isinstance(item, dict)
            else {"node_id": node_id, "asset_id": item}
            for node_id, items in data.items()
            for item in (items if isinstance(items, list) else [items])
        ]
    if isinstance(data, list):
        data = [
            {
                **item,
                "allocated_at": naive_to_utc(item.get("allocated_at")),
                "expires_at": naive_to_utc(item.get("expires_at")),
            }
            if isinstance(item, dict)
            else item
            for item in data
        ]
    return _validate(list[SeedAllocation], data, source=source)


def _validate(shape: Any, data: Any, *, source: str) -> Any:
    try:
        return TypeAdapter(shape).validate_python(data)
    except ValidationError as error:
        problems = [
            f"{_where(problem['loc'])}: {problem['msg']}"
            for problem in error.errors()[:MAX_REPORTED_PROBLEMS]
        ]
        more = error.error_count() - len(problems)
        tail = f"\n  … and {more} more" if more > 0 else ""
        raise Invalid(f"{source}: invalid:\n  " + "\n  ".join(problems) + tail) from error


def _where(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "top level (expected a list)"
    row, *fields = loc
    return _row(row) + (f", field {'.'.join(map(str, fields))}" if fields else "")


def _row(index: Any) -> str:
    """A row as a person counts them: the first is row 1."""
    return f"row {index + 1}" if isinstance(index, int) else f"row {index}"


def _refuse_duplicates(ids: Iterable[tuple[str, int]], *, source: str) -> None:
    first: dict[str, int] = {}
    for asset_id, index in ids:
        if asset_id in first:
            raise Invalid(
                f"{source}: {_row(index)}: id {asset_id!r} already given in {_row(first[asset_id])}"
            )
        first[asset_id] = index


def import_seed(
    session: Session,
    *,
    assets: list[SeedAsset],
    allocations: list[SeedAllocation],
    queue: QueuePolicy,
    lease_seconds: float,
    now: datetime,
) -> ImportReport:
    items = [
        NewAsset(
            id=row.id,
            url=row.url,
            name=row.name or row.url.rstrip("/").rsplit("/", 1)[-1] or row.id,
            size_mb=row.size_mb,
            priority=row.priority,
            dataset_id=row.dataset_id,
            format=row.format,
            extra=row.extras(),
        )
        for row in assets
    ]
    upserted = catalog_service.upsert_assets(session, items=items, queue=queue, now=now)
    catalog_service.ensure_datasets(
        session, ids=[item.dataset_id for item in items if item.dataset_id]
    )
    report = ImportReport(assets_created=upserted.created, assets_updated=upserted.updated)
    if allocations:
        added, skipped = holdings.import_holdings(
            session,
            records=[
                Holding(a.asset_id, a.node_id, a.status, a.allocated_at, a.expires_at)
                for a in allocations
            ],
            queue=queue,
            lease_seconds=lease_seconds,
            now=now,
        )
        report.allocations_added, report.allocations_skipped = added, skipped
    return report


def export_seed(
    session: Session, *, directory: Path, ckan_file: str, allocations_file: str
) -> dict[str, int]:
    """Write both files atomically (a failed export leaves any previous files untouched)."""
    directory.mkdir(parents=True, exist_ok=True)
    counts = {"assets": 0, "allocations": 0}

    def asset_rows() -> Iterator[dict[str, Any]]:
        for asset in catalog_service.iterate_assets(session):
            counts["assets"] += 1
            yield {
                **(asset.extra or {}),
                "id": asset.id,
                "url": asset.url,
                "name": asset.name,
                "size_mb": asset.size_mb,
                "priority": asset.base_priority,
                "dataset_id": asset.dataset_id,
                "format": asset.format,
            }

    def allocation_rows() -> Iterator[dict[str, Any]]:
        for row in holdings.iterate_holdings(session):
            counts["allocations"] += 1
            yield row

    _write_list(directory / ckan_file, asset_rows())
    _write_list(directory / allocations_file, allocation_rows())
    return counts


def _write_list(path: Path, rows: Iterator[dict[str, Any]]) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write("[")
            for i, row in enumerate(rows):
                out.write(",\n " if i else "\n ")
                out.write(json.dumps(row, ensure_ascii=False, default=str))
            out.write("\n]\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
