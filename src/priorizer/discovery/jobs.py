"""Probing the catalog, a job: due assets are probed and expanded with no transaction open, then
what was found is written a batch at a time (while the next batch is probed). Scheduled every
PROBE_INTERVAL_MINUTES, up to PROBE_BATCH due assets, in one process at a time (the others skip
their turn)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from priorizer.catalog import discovered, probes
from priorizer.catalog.probes import Found, Probed
from priorizer.db import Database
from priorizer.discovery.crawl import Expansion, Robots, expand
from priorizer.discovery.listings import name_of
from priorizer.discovery.prober import Prober, host_key, run
from priorizer.discovery.service import ProbeConfig, ProbeReport, count, file_format, found_of
from priorizer.queue.policy import QueuePolicy

log = logging.getLogger(__name__)

JOB_ID = "discovery"
PROBE_LOCK = 74_251_010  # PostgreSQL advisory lock key (maintenance uses ...002)


def scheduled_probe(
    *,
    database: Database,
    config: ProbeConfig,
    queue: QueuePolicy,
    limit: int,
    clock: Callable[[], datetime],
) -> ProbeReport | None:
    with database.exclusive("discovery", key=PROBE_LOCK) as mine:
        if not mine:
            log.info("probe skipped: another process is probing")
            return None
        try:
            report = probe_catalog(database, config=config, queue=queue, limit=limit, clock=clock)
        except Exception:
            log.exception("probe run failed")
            return None
    if report.probed:
        log.info("probe run: %s", report.as_dict())
    return report


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
        run(_probe_all(database, targets, config, queue, clock, report))
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
        run: list[tuple[Probed, Expansion]] = []  # recorded together, up to an expanded one
        for asset_id, expansion in results:
            found = found_of(expansion.probe, expansion.kind)
            probed = Probed(asset_id, found, len(expansion.children), expansion.is_expanded)
            run.append((probed, expansion))
            if expansion.is_expanded:
                _record(session, run, queue, now, report, pending)
                run = []
                children = [found_of(child, "file") for child in expansion.children]
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
        _record(session, run, queue, now, report, pending)
        probes.store_probes(session, pending, now)


def _record(
    session: Session,
    run: Sequence[tuple[Probed, Expansion]],
    queue: QueuePolicy,
    now: datetime,
    report: ProbeReport,
    pending: list[tuple[str, Found, int]],
) -> None:
    """Probes recorded in one go (`probes.record_probes`), in their order, and counted."""
    if not run:
        return
    was = probes.record_probes(
        session, probed=[probed for probed, _e in run], queue=queue, now=now, pending=pending
    )
    for (_probed, expansion), before in zip(run, was, strict=True):
        count(report, expansion, before)
