"""Prometheus metrics (`GET /metrics`).

Two kinds. Counters say what this process did: requests, lease events it committed, cycles it
ran. Prometheus sums them over instances, and over workers through the client's multiprocess
mode (`PROMETHEUS_MULTIPROC_DIR`, which `priorizer serve` sets when it starts several). Gauges
say where the rescue stands; they are read from the database at each scrape, so every instance
reports the same figures. Those per base priority come from the last maintenance cycle's
snapshot (`priorizer_progress_timestamp_seconds` says when), since they cost a sorting pass over
the whole catalog."""

from __future__ import annotations

import logging
import os
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# Routes no template matched share one label: a label per path would let anyone grow the series.
UNMATCHED_ROUTE = "<unmatched>"

REQUESTS = Counter(
    "priorizer_http_requests",
    "HTTP requests answered, by route template and status",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "priorizer_http_request_duration_seconds",
    "Time to answer HTTP requests, by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LEASE_EVENTS = {
    name: Counter(f"priorizer_{name}", text)
    for name, text in {
        "allocations": "Leases granted to nodes",
        "completions": "Leases turned into copies (retries of a recorded copy not counted)",
        "failures": "Leases closed by a node's failure report",
        "releases": "Leases given back by their node",
        "expirations": "Leases expired, by requests or by maintenance",
        "renewals": "Leases renewed",
    }.items()
}
MAINTENANCE_CYCLES = Counter(
    "priorizer_maintenance_cycles",
    "Maintenance cycles run by this process, by outcome",
    ["outcome"],
)
MAINTENANCE_SECONDS = Histogram(
    "priorizer_maintenance_cycle_duration_seconds",
    "Length of the maintenance cycles run here",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)

_PENDING = "priorizer.metrics.pending"


def tally(session: Session, event_name: str, count: int = 1) -> None:
    """Count `count` lease events once the session's transaction commits (never if it rolls
    back, so a retried or failed write is not counted)."""
    if count:
        session.info.setdefault(_PENDING, Tally())[event_name] += count


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for name, count in session.info.pop(_PENDING, {}).items():
        LEASE_EVENTS[name].inc(count)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    route = route or UNMATCHED_ROUTE
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_SECONDS.labels(method, route).observe(seconds)


def observe_cycle(outcome: str, seconds: float) -> None:
    MAINTENANCE_CYCLES.labels(outcome).inc()
    MAINTENANCE_SECONDS.observe(seconds)


class Gauges(Collector):
    """Where the rescue stands, read from the database at each scrape. A database that does
    not answer gives `priorizer_database_up 0` and no figures, not a failed scrape."""

    def __init__(self, read: Any) -> None:
        self.read = read  # () -> the figures of `status.service.figures`

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("priorizer_database_up", "Whether the database answered")
        try:
            figures = self.read()
        except Exception as error:  # reported as a figure: the scrape itself must succeed
            log.warning("metrics could not read the database: %s", type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _gauges(figures)


BYTES_PER_MB = 1024 * 1024
PER_PRIORITY = (
    ("with_copy", 1, "priorizer_assets_with_copy", "Assets with a counted copy, by base priority"),
    ("at_target", 1, "priorizer_assets_at_target", "Assets with all copies wanted, by priority"),
    ("megabytes", BYTES_PER_MB, "priorizer_asset_bytes", "Known size of the assets, by priority"),
    (
        "megabytes_with_copy",
        BYTES_PER_MB,
        "priorizer_asset_bytes_with_copy",
        "Known size of the assets with a copy, by base priority",
    ),
    (
        "megabytes_at_target",
        BYTES_PER_MB,
        "priorizer_asset_bytes_at_target",
        "Known size of the assets with all the copies wanted, by base priority",
    ),
)


def _gauges(figures: dict[str, Any]) -> Iterator[Metric]:
    rows = figures["progress"]
    assets = GaugeMetricFamily(
        "priorizer_assets",
        "Assets in the catalog, by base priority and state",
        labels=["priority", "state"],
    )
    for row in rows:
        assets.add_metric([str(row["priority"]), row["state"]], row["assets"])
    yield assets
    for key, scale, name, text in PER_PRIORITY:
        family = GaugeMetricFamily(name, text, labels=["priority"])
        for priority in sorted({row["priority"] for row in rows}):
            total = sum(row[key] for row in rows if row["priority"] == priority)
            family.add_metric([str(priority)], total * scale)
        yield family
    if figures["progress_at"] is not None:
        yield GaugeMetricFamily(
            "priorizer_progress_timestamp_seconds",
            "When the per-priority figures were taken (by the last maintenance cycle; Unix time)",
            value=figures["progress_at"].timestamp(),
        )
    for name, text, value in (
        ("priorizer_copies", "Copies counted toward the target", figures["copies"]),
        ("priorizer_open_leases", "Leases open now", figures["active_allocations"]),
        ("priorizer_nodes", "Nodes known", figures["nodes"]),
        ("priorizer_nodes_lost", "Nodes unseen for NODE_LOST_DAYS", figures["lost_nodes"]),
        (
            "priorizer_replication_target",
            "Copies wanted of each asset",
            figures["replication_target"],
        ),
    ):
        yield GaugeMetricFamily(name, text, value=value)
    yield GaugeMetricFamily(
        "priorizer_assets_removed_without_copy",
        "Assets of datasets removed upstream that no node holds yet",
        value=figures.get("removed_without_copy", 0),
    )
    yield from _source_gauges(figures.get("sources") or [])
    last = figures["last_maintenance"]
    if last is not None and last["finished_at"] is not None:
        for name, text, value in (
            (
                "priorizer_maintenance_last_duration_seconds",
                "Length of the last maintenance cycle, run by any process",
                last["duration_seconds"] or 0.0,
            ),
            (
                "priorizer_maintenance_last_success",
                "1 when the last maintenance cycle succeeded, 0 when it failed",
                1 if last["outcome"] == "ok" else 0,
            ),
            (
                "priorizer_maintenance_last_finished_timestamp_seconds",
                "When the last maintenance cycle finished (Unix time)",
                last["finished_at"].timestamp(),
            ),
        ):
            yield GaugeMetricFamily(name, text, value=value)


SOURCE_GAUGES = (
    ("datasets", "priorizer_source_datasets", "Datasets of each watched source"),
    ("removed_upstream", "priorizer_source_removed_upstream", "Of them, removed upstream"),
    ("failures", "priorizer_source_failures", "Harvests of each source failed in a row"),
    ("last_run_at", "priorizer_source_last_run_timestamp_seconds", "Last harvest (Unix time)"),
    ("next_run_at", "priorizer_source_next_run_timestamp_seconds", "Next harvest (Unix time)"),
)


def _source_gauges(sources: list[dict[str, Any]]) -> Iterator[Metric]:
    """Per watched source, labelled by its key (a campaign watches a handful)."""
    for key, name, text in SOURCE_GAUGES:
        family = GaugeMetricFamily(name, text, labels=["source"])
        for source in sources:
            value = source[key]
            if value is None:
                continue
            family.add_metric([source["key"]], value.timestamp() if key.endswith("_at") else value)
        yield family
    ok = GaugeMetricFamily(
        "priorizer_source_last_success", "1 when its last harvest succeeded", labels=["source"]
    )
    for source in sources:
        if source["last_state"] is not None:
            ok.add_metric([source["key"]], 1 if source["last_state"] == "ok" else 0)
    yield ok


def exposition(gauges: Gauges) -> bytes:
    """The scrape: this process's counters (every worker's, in multiprocess mode) and the gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROCESS_DIR):
        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in (
            REQUESTS,
            REQUEST_SECONDS,
            MAINTENANCE_CYCLES,
            MAINTENANCE_SECONDS,
            *LEASE_EVENTS.values(),
        ):
            registry.register(collector)
    registry.register(gauges)
    return prometheus_client.generate_latest(registry)
