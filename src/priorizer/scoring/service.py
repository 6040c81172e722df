"""Scoring use cases: score a batch of the catalog, explain a priority (the rescoring of the
catalog in batches is `scoring.jobs`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from priorizer.catalog import service as catalog_service
from priorizer.queue.policy import QueuePolicy
from priorizer.scoring.policy import Facts, Policy, Score, as_dict, score


def facts_of(row: Any) -> Facts:
    """Scoring's view of a row of `catalog_service.scoring_rows`."""
    return Facts(
        size_mb=row.size_mb,
        organization=row.organization,
        title=row.title,
        name=row.name,
        tags=tuple(row.tags or ()),
        views=row.views,
        modified_at=row.modified_at,
        removed_upstream=row.removed_at is not None,
    )


@dataclass(slots=True)
class RescoreReport:
    scored: int = 0  # assets the policy applies to (no manual priority)
    changed: int = 0
    manual: int = 0  # assets whose manual priority wins


def apply_policy(
    session: Session,
    rows: list[Any],
    *,
    policy: Policy,
    queue: QueuePolicy,
    now: datetime,
    report: RescoreReport,
) -> None:
    changed = {}
    for row in rows:
        if row.manual_priority is not None:
            report.manual += 1
            continue
        report.scored += 1
        result = score(policy, facts_of(row), now=now).result
        if result != row.base_priority:
            changed[row.id] = result
    catalog_service.set_base_priorities(session, priorities=changed, queue=queue, now=now)
    report.changed += len(changed)


def explain(session: Session, *, asset_id: str, policy: Policy, now: datetime) -> dict[str, Any]:
    """Why the asset has its base priority: each factor's points under the policy, the result,
    and the manual priority that wins over it, if any."""
    asset = catalog_service.get_asset(session, asset_id=asset_id)  # NotFound if unknown
    row = catalog_service.scoring_rows(session, asset_ids=[asset_id])[0]
    result: Score = score(policy, facts_of(row), now=now)
    return {
        "asset_id": asset.id,
        "dataset_id": asset.dataset_id,
        "policy": policy.name,
        "base": policy.base,
        **as_dict(result),
        "manual_priority": asset.manual_priority,
        "base_priority": asset.base_priority,
        "effective_priority": asset.priority,
        "decided_by": "manual" if asset.manual_priority is not None else "policy",
    }
