"""Rescoring the catalog (after a harvest, or a policy change): a job, in batches of short
transactions of its own."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from priorizer.catalog import service as catalog_service
from priorizer.db import Database
from priorizer.queue.policy import QueuePolicy
from priorizer.scoring.policy import Policy
from priorizer.scoring.service import RescoreReport, apply_policy


def rescore(
    database: Database,
    *,
    policy: Policy,
    queue: QueuePolicy,
    now: datetime,
    dataset_ids: Iterable[str] | None = None,
) -> RescoreReport:
    """Apply the policy to the whole catalog (or to the assets of `dataset_ids`), in batches of
    short transactions; manual priorities are left as they are."""
    report = RescoreReport()
    if dataset_ids is not None:
        ids = sorted(set(dataset_ids))
        for start in range(0, len(ids), 500):
            with database.background_write() as session:
                rows = catalog_service.scoring_rows(session, dataset_ids=ids[start : start + 500])
                apply_policy(session, rows, policy=policy, queue=queue, now=now, report=report)
        return report
    after = ""
    while True:
        with database.background_write() as session:
            rows = catalog_service.scoring_rows(session, after=after)
            if not rows:
                return report
            apply_policy(session, rows, policy=policy, queue=queue, now=now, report=report)
        after = rows[-1].id
