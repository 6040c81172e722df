"""`catalog.stats.summary`: what a maintenance cycle records, in one pass over the catalog,
equal to the figures each separate query gives (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import text

from priorizer.catalog import stats
from priorizer.config import Settings
from priorizer.db import Database
from priorizer.queue.states import ASSET_ACTIVE, ASSET_STATES
from tests.support.factories import add_assets, asset

# (copies, disputed, conflicting): copies that agree, disputed ones, checksums that differ.
COPY_CASES = [(0, 0, False), (1, 0, False), (2, 0, False), (2, 1, True), (3, 2, True), (1, 1, True)]


def test_one_pass_gives_what_the_separate_queries_give(
    database: Database, settings: Settings, clock
) -> None:
    items = [
        asset(
            n,
            priority=1 + n % 10,
            size_mb=None if n % 7 == 0 else 10.0 * (1 + n % 13),
        )
        for n in range(120)
    ]
    add_assets(database, settings, items, clock())
    with database.write() as session:
        for n in range(120):
            copies, disputed, conflicting = COPY_CASES[n % len(COPY_CASES)]
            session.execute(
                text(
                    "UPDATE assets SET copies = :c, disputed_copies = :d, "
                    "conflicting_copies = :x, state = :s, priority = :p WHERE id = :id"
                ),
                {
                    "c": copies,
                    "d": disputed,
                    "x": conflicting,
                    "s": ASSET_STATES[n % 3] if n % 4 else ASSET_ACTIVE,
                    "p": 1 + (n * 7) % 10,  # effective priority apart from the base one
                    "id": f"asset-{n}",
                },
            )
    with database.read() as session:
        summary = stats.summary(session, replication_target=2)
        totals = stats.stats(session, replication_target=2)
        progress = stats.progress(session, replication_target=2)
        rows = session.execute(text("SELECT priority, copies, state FROM assets")).all()

    assert summary["catalog"] == totals
    assert summary["progress"] == progress
    assert summary["priority_distribution"] == {
        str(k): v for k, v in sorted(Counter(row.priority for row in rows).items())
    }
    assert summary["copies_distribution"] == {
        str(k): v for k, v in sorted(Counter(row.copies for row in rows).items())
    }
    assert summary["states"] == dict(sorted(Counter(row.state for row in rows).items()))
    # The case is varied enough to tell the figures apart.
    assert len(summary["states"]) == 3 and len(summary["copies_distribution"]) == 4
    assert 0 < totals["assets_at_target"] < totals["assets_with_a_copy"] < totals["assets"]
    assert totals["disputed_copies"] > totals["assets_with_disputed_copies"] > 0
    assert [(row["priority"], row["state"]) for row in progress] == sorted(
        {(row["priority"], row["state"]) for row in progress}, key=lambda k: (-k[0], k[1])
    )
