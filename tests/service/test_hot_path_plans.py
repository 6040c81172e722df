"""PostgreSQL runs the hot path's statements prepared, on plans made once per connection and
without the values of their parameters. These tests hold that those plans never scan a whole
table, whatever the statistics said when they were made (a scan per request, or per candidate,
is what once made /allocate take seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from priorizer.allocation import claims, picks
from priorizer.config import Settings
from priorizer.queue.policy import queue_policy, rank_levels
from tests.conftest import truncate_all

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
ASSETS = 2_000
LEASES = 20_000

_ASSETS_SQL = (
    "INSERT INTO assets (id, url, name, size_mb, format, dataset_id, base_priority, priority, "
    "manual_priority, url_key, state, created_at, updated_at, copies, disputed_copies, leases, "
    "budget_mb) SELECT 'a-' || lpad(i::text, 6, '0'), 'https://data.example.org/' || i, "
    "'f' || i, 1 + i % 500, 'NC', 'd-' || i / 20, 1 + i % 10, 1 + i % 10, 1 + i % 10, "
    "'a-' || lpad(i::text, 6, '0'), 'active', :now, :now, 0, 0, 0, 0 "
    "FROM generate_series(1, :n) AS g(i)"
)
_NODES_SQL = (
    "INSERT INTO nodes (id, first_seen_at, last_seen_at, free_space_mb) "
    "SELECT 'n-' || i, :now, :now, 1000 FROM generate_series(1, :n) AS g(i)"
)
# Open leases, none due: every node holds a few, each on its own asset.
_LEASES_SQL = (
    "INSERT INTO allocations (asset_id, node_id, status, reserved_mb, allocated_at, renewed_at, "
    "expires_at) SELECT 'a-' || lpad((1 + i % :assets)::text, 6, '0'), 'n-' || (1 + i / 10), "
    "'allocated', 1, :now, :now, :later FROM generate_series(0, :n - 1) AS g(i)"
)


@pytest.fixture
def pg(pg_session_url: str) -> Iterator[Engine]:
    truncate_all(pg_session_url)
    engine = create_engine(pg_session_url)
    with engine.begin() as conn:
        conn.execute(text(_ASSETS_SQL), {"now": NOW, "n": ASSETS})
        conn.execute(text(_NODES_SQL), {"now": NOW, "n": LEASES // 10 + 1})
    with Session(engine) as session, session.begin():
        queue = queue_policy(Settings.of(run_scheduler=False))
        claims.recompute_ranks(session, policy=queue, unknown_size_mb=queue.unknown_size_mb)
    yield engine
    engine.dispose()
    truncate_all(pg_session_url)


def _add_leases(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(_LEASES_SQL),
            {"now": NOW, "later": NOW + timedelta(hours=1), "n": LEASES, "assets": ASSETS},
        )


def _analyze(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def _scans_of_allocations(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'allocations'")
            ).scalar_one()
        )


def _flush_statistics(session: Session) -> None:
    session.execute(text("SELECT pg_stat_force_next_flush()"))


def test_reading_a_requests_state_never_scans_the_leases(pg: Engine) -> None:
    _add_leases(pg)
    _analyze(pg)
    before = _scans_of_allocations(pg)
    with Session(pg) as session:
        # As a pooled connection runs it once psycopg prepared it: the generic plan.
        session.execute(text("SET plan_cache_mode = force_generic_plan"))
        for i in range(8):
            state = picks.request_state(session, node_id=f"n-{i + 1}", now=NOW)
            assert state.open_count == 10 and not state.any_due and not state.node_due
        session.commit()
        _flush_statistics(session)
        session.commit()
    assert _scans_of_allocations(pg) == before


def test_the_pick_function_keeps_to_its_indexes_when_the_leases_grow_after_its_plan(
    pg: Engine,
) -> None:
    """Its plans are made at its first calls in a connection, here while `allocations` is
    empty (and analyzed so); then the table grows, as on a new deployment's first day."""
    _analyze(pg)
    levels = rank_levels(queue_policy(Settings.of(run_scheduler=False)))
    with Session(pg) as session:

        def pick(node_id: str) -> list[str]:
            rows = picks.pick_locked(
                session,
                levels=levels,
                max_mb=2_000,
                slots=5,
                node_id=node_id,
                failed_since=NOW - timedelta(hours=1),
                skip=[],
                smallest_first=True,
            )
            session.rollback()
            return [row.id for row in rows]

        for i in range(8):
            assert len(pick(f"new-{i}")) == 5
        _add_leases(pg)
        before = _scans_of_allocations(pg)
        assert len(pick("n-1")) == 5
        _flush_statistics(session)
        session.commit()
    assert _scans_of_allocations(pg) == before
