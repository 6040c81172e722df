"""Holdings in and out of the catalog: the copies a seed file lists imported as completed
allocations, and every holding exported for a seed file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from priorizer.allocation import claims, repo
from priorizer.allocation.models import ALLOCATED, COMPLETED
from priorizer.errors import Invalid
from priorizer.node import service as node_service
from priorizer.queue.policy import QueuePolicy


@dataclass(frozen=True, slots=True)
class Holding:
    """A lease or copy from another deployment's records."""

    asset_id: str
    node_id: str
    status: str  # ALLOCATED or COMPLETED
    allocated_at: datetime | None = None
    expires_at: datetime | None = None


def import_holdings(
    session: Session,
    *,
    records: Sequence[Holding],
    queue: QueuePolicy,
    lease_seconds: float,
    now: datetime,
) -> tuple[int, int]:
    """Load leases and copies of another deployment: (recorded, already known).

    A copy beats a lease of the same asset on the same node, in the records as in the
    database (the lease then becomes that copy). Every asset must already be in the catalog;
    otherwise nothing is written."""
    wanted: dict[tuple[str, str], Holding] = {}
    for record in records:
        key = (record.asset_id, record.node_id)
        if key not in wanted or record.status == COMPLETED:
            wanted[key] = record
    budgets = repo.asset_budgets(session, asset_ids=sorted({key[0] for key in wanted}))
    unknown = sorted({key[0] for key in wanted} - budgets.keys())
    if unknown:
        raise Invalid(f"allocations name assets not in the catalog: {', '.join(unknown[:10])}")
    node_service.ensure_nodes(session, node_ids=sorted({key[1] for key in wanted}), now=now)
    added: list[dict[str, Any]] = []
    new_leases: Counter[str] = Counter()
    new_copies: Counter[str] = Counter()
    for (asset_id, node_id), record in wanted.items():  # file order: ids follow it
        held = repo.holding_status(session, asset_id=asset_id, node_id=node_id)
        if held == ALLOCATED and record.status == COMPLETED:
            claims.close_lease(
                session, asset_id=asset_id, node_id=node_id, status=COMPLETED, now=now
            )
            new_leases[asset_id] -= 1
            new_copies[asset_id] += 1
        elif held is None:
            added.append(_imported_row(record, budgets[asset_id], lease_seconds, now))
            (new_copies if record.status == COMPLETED else new_leases)[asset_id] += 1
    if added:
        claims.insert_leases(session, added)
    for asset_id in sorted(new_leases.keys() | new_copies.keys()):
        claims.add_holders(
            session,
            asset_id=asset_id,
            new_leases=new_leases[asset_id],
            new_copies=new_copies[asset_id],
            policy=queue,
        )
    recorded = sum(new_copies.values()) + sum(n for n in new_leases.values() if n > 0)
    return recorded, len(records) - recorded


def _imported_row(
    record: Holding, reserved_mb: float, lease_seconds: float, now: datetime
) -> dict[str, Any]:
    start = record.allocated_at or now
    return {
        "asset_id": record.asset_id,
        "node_id": record.node_id,
        "status": record.status,
        "reserved_mb": reserved_mb,
        "allocated_at": start,
        "renewed_at": start,
        "expires_at": record.expires_at or start + timedelta(seconds=lease_seconds),
        "closed_at": now if record.status == COMPLETED else None,
    }


def iterate_holdings(session: Session) -> Iterator[dict[str, Any]]:
    """Open leases and copies in the seed's `allocations.json` record shape."""
    for row in repo.iterate_holdings(session):
        yield {
            "asset_id": row.asset_id,
            "node_id": row.node_id,
            "status": row.status,
            "allocated_at": row.allocated_at.isoformat(),
            "expires_at": row.expires_at.isoformat(),
        }
