"""What discovery works with: its settings, the report of a probe run, what a probe found as the
catalog records it, and URL lists into the catalog. The probe run itself is `discovery.jobs`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from priorizer.catalog import discovered
from priorizer.catalog.probes import PROBE_FIELDS, Found
from priorizer.config import Settings
from priorizer.discovery.crawl import Expansion, Limits
from priorizer.discovery.imports import UrlRecord
from priorizer.discovery.listings import name_of
from priorizer.discovery.prober import Probe
from priorizer.queue.policy import QueuePolicy

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


def count(report: ProbeReport, expansion: Expansion, was: str | None) -> None:
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


def found_of(probe: Probe, kind: str) -> Found:
    """What the catalog records of a probe (`catalog.probes.PROBE_FIELDS`), of that kind."""
    fields = {name: getattr(probe, name) for name in PROBE_FIELDS if name != "kind"}
    return Found(url=probe.url, kind=kind, **fields)


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
