"""Start-up duties and the service's view of itself."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from priorizer.allocation import service as allocation_service
from priorizer.allocation.policy import QueuePolicy
from priorizer.catalog import service as catalog_service
from priorizer.node import service as node_service
from priorizer.system import repo

log = logging.getLogger(__name__)

QUEUE_POLICY_KEY = "queue_policy"
LAST_MAINTENANCE_KEY = "last_maintenance"


def ensure_queue_policy(session: Session, *, queue: QueuePolicy, now: datetime) -> bool:
    """Recompute ranks when the queue settings differ from those the ranks were computed with."""
    wanted = dataclasses.asdict(queue)
    if repo.get(session, key=QUEUE_POLICY_KEY) == wanted:
        return False
    count = allocation_service.apply_queue_policy(session, queue=queue)
    repo.put(session, key=QUEUE_POLICY_KEY, value=wanted, now=now)
    log.info("queue policy %s applied to %d assets", wanted, count)
    return True


def stored_queue_policy(session: Session) -> QueuePolicy | None:
    """The queue policy the stored ranks were computed with, if any."""
    value = repo.get(session, key=QUEUE_POLICY_KEY)
    return None if value is None else QueuePolicy(**value)


def record_maintenance(session: Session, *, outcome: dict[str, Any], now: datetime) -> None:
    repo.put(session, key=LAST_MAINTENANCE_KEY, value=outcome, now=now)


def last_maintenance(session: Session) -> dict[str, Any] | None:
    return repo.get(session, key=LAST_MAINTENANCE_KEY)


def status(session: Session, *, replication_target: int) -> dict[str, Any]:
    stats = catalog_service.catalog_stats(session, replication_target=replication_target)
    return {
        **stats,
        "active_allocations": allocation_service.count_open(session),
        "nodes": node_service.count_nodes(session),
        "last_maintenance": last_maintenance(session),
    }
