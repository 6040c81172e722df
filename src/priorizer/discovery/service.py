"""Probing the catalog: due assets are probed and expanded with no transaction open, then what
was found is written a batch at a time (while the next batch is probed)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from priorizer.allocation.policy import QueuePolicy
from priorizer.catalog import discovered
from priorizer.catalog.discovered import Found
from priorizer.config import Settings
from priorizer.db import Database
from priorizer.discovery.crawl import Expansion, Limits, Robots, expand
from priorizer.discovery.imports import UrlRecord
from priorizer.discovery.listings import name_of
from priorizer.discovery.prober import Probe, Prober, host_key

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    concurrency: int
    host_concurrency: int
    timeout_seconds: float
    retries: int
    refresh_days: float
    contact_url: str
    limits: Limits

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: int | None) -> ProbeConfig:
        values = {
            "concurrency": settings.probe_concurrency,
            "host_concurrency": settings.probe_host_concurrency,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(
            concurrency=values["concurrency"],
            host_concurrency=values["host_concurrency"],
            timeout_seconds=settings.probe_timeout_seconds,
            retries=settings.probe_retries,
            refresh_days=settings.probe_refresh_days,
            contact_url=settings.probe_contact_url,
            limits=Limits(
                max_depth=settings.expand_max_depth,
                max_children=settings.expand_max_children,
                timeout_seconds=settings.probe_timeout_seconds,
            ),
        )


@dataclass(slots=True)
class ProbeReport:
    probed: int = 0
    files: int = 0
    expanded: int = 0
    children_added: int = 0
    gone: int = 0
    found_back: int = 0
    vanished: int = 0
    errors: int = 0
    bytes_found: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def probe_catalog(
    database: Database,
    *,
    config: ProbeConfig,
    queue: QueuePolicy,
    limit: int,
    clock: Callable[[], datetime],
) -> ProbeReport:
    """Probe up to `limit` due assets (never probed, or not for `refresh_days`)."""
    started = time.perf_counter()
    with database.read() as session:
        before = clock() - timedelta(days=config.refresh_days)
        targets = discovered.due(session, limit=limit, before=before)
    report = ProbeReport()
    if targets:
        asyncio.run(_probe_all(database, targets, config, queue, clock, report))
    report.seconds = round(time.perf_counter() - started, 3)
    return report


async def _probe_all(
    database: Database,
    targets: Sequence[tuple[str, str]],
    config: ProbeConfig,
    queue: QueuePolicy,
    clock: Callable[[], datetime],
    report: ProbeReport,
) -> None:
    batch = max(4 * config.concurrency, 200)
    async with Prober(
        contact_url=config.contact_url,
        concurrency=config.concurrency,
        host_concurrency=config.host_concurrency,
        timeout_seconds=config.timeout_seconds,
        retries=config.retries,
    ) as prober:
        robots = Robots(prober)
        writing: asyncio.Task[None] | None = None
        targets = sorted(targets, key=lambda target: host_key(target[1]))
        for start in range(0, len(targets), batch):
            chunk = targets[start : start + batch]
            results = await asyncio.gather(
                *(expand(prober, robots, url, config.limits) for _id, url in chunk)
            )
            if writing is not None:
                await writing
            pairs = [
                (asset_id, result) for (asset_id, _url), result in zip(chunk, results, strict=True)
            ]
            writing = asyncio.create_task(
                asyncio.to_thread(_write, database, pairs, queue, clock(), report)
            )
        if writing is not None:
            await writing


def _write(
    database: Database,
    results: Sequence[tuple[str, Expansion]],
    queue: QueuePolicy,
    now: datetime,
    report: ProbeReport,
) -> None:
    with database.write() as session:
        pending: list[tuple[str, Found, int]] = []
        discovered.lock_assets(session, asset_ids=[asset_id for asset_id, _e in results])
        for asset_id, expansion in results:
            was = discovered.record_probe(
                session,
                asset_id=asset_id,
                found=_found(expansion.probe, expansion.kind),
                children=len(expansion.children),
                is_expanded=expansion.is_expanded,
                queue=queue,
                now=now,
                pending=pending,
            )
            _count(report, expansion, was)
            if expansion.is_expanded:
                children = [_found(child, "file") for child in expansion.children]
                added, vanished = discovered.add_children(
                    session,
                    parent_id=asset_id,
                    children=children,
                    names=[name_of(child.url) for child in children],
                    formats=[file_format(child) for child in children],
                    is_complete=not expansion.is_truncated,
                    queue=queue,
                    now=now,
                )
                report.children_added += added
                report.vanished += vanished
                report.bytes_found += sum(c.size_bytes or 0 for c in children)
        discovered.store_probes(session, pending, now)


def _count(report: ProbeReport, expansion: Expansion, was: str | None) -> None:
    report.probed += 1
    if expansion.kind == "gone":
        report.gone += 1
    elif expansion.kind == "error":
        report.errors += 1
    elif expansion.is_expanded:
        report.expanded += 1
    else:
        report.files += 1
        report.bytes_found += expansion.probe.size_bytes or 0
    if was == "gone":
        report.found_back += 1


def _found(probe: Probe, kind: str) -> Found:
    return Found(
        url=probe.url,
        kind=kind,
        final_url=probe.final_url,
        status=probe.status,
        content_type=probe.content_type,
        size_bytes=probe.size_bytes,
        last_modified=probe.last_modified,
        etag=probe.etag,
        error=probe.error,
    )


def file_format(found: Found) -> str | None:
    """A child's format: its extension, as harvests record formats (upper case)."""
    suffix = PurePosixPath(urlsplit(found.url).path).suffix.lstrip(".")
    return suffix.upper()[:100] or None


def import_url_list(
    session: Session,
    *,
    records: Sequence[UrlRecord],
    priority: int,
    queue: QueuePolicy,
    now: datetime,
) -> tuple[int, int]:
    """A URL list's records into the catalog (new URLs only): (added, already known)."""
    items = [
        discovered.ListedUrl(
            url=record.url,
            name=name_of(record.url),
            size_bytes=record.size_bytes,
            format=file_format(Found(record.url, "file")),
            priority=record.priority,
            dataset_id=record.dataset_id,
            extra={
                k: v
                for k, v in (
                    ("content_type", record.content_type),
                    ("source_page", record.source_page),
                )
                if v
            }
            or None,
        )
        for record in records
    ]
    return discovered.add_listed_urls(
        session, items=items, default_priority=priority, queue=queue, now=now
    )
