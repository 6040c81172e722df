"""The allocation rules as pure functions, and their SQL twin."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Boolean, Float, Integer, create_engine, literal, select

from priorizer.config import Settings
from priorizer.queue.policy import (
    QueuePolicy,
    effective_size_mb,
    fit,
    node_budget_mb,
    queue_policy,
    rank,
    rank_levels,
    size_penalty,
)
from priorizer.queue.sql import rank_sql

DEFAULT = QueuePolicy(
    replication_target=2,
    copy_penalty=3.0,
    unknown_size_mb=1024.0,
    size_penalty=2.0,
    size_penalty_from_mb=1024.0,
    size_penalty_max=4.0,
    smallest_first=True,
)
# The policy before the size rule: what a stored policy without its fields means.
LEGACY = QueuePolicy(replication_target=2, copy_penalty=3.0, unknown_size_mb=1024.0)
policies = st.builds(
    QueuePolicy,
    replication_target=st.integers(1, 6),
    copy_penalty=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 7.5, 100.0]),
    unknown_size_mb=st.floats(1, 10_000),
    size_penalty=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 100.0]),
    size_penalty_from_mb=st.sampled_from([1.0, 100.0, 1024.0, 1e6]),
    size_penalty_max=st.sampled_from([0.0, 1.0, 4.0, 10.0, 100.0]),
    smallest_first=st.booleans(),
)
sizes = st.one_of(st.floats(0, 1e8), st.sampled_from([1024.0, 2048.0, 4096.0, 1024.5]))


@dataclass
class Item:
    budget_mb: float


def test_budget_is_free_space_minus_reserved():
    assert node_budget_mb(10, 0) == 10 * 1024
    assert node_budget_mb(10, 1000) == 10 * 1024 - 1000
    assert node_budget_mb(1, 5000) == 0


def test_unknown_size_counts_as_assumed_size():
    assert effective_size_mb(None, 1024) == 1024
    assert effective_size_mb(0.5, 1024) == 0.5


def test_settings_defaults_are_the_default_policy():
    assert queue_policy(Settings(_env_file=None)) == DEFAULT


def test_copies_are_penalised_and_capped_by_target():
    assert rank(10, 0, True, DEFAULT, budget_mb=100) == 10
    # competes with first copies of priority 7
    assert rank(10, 1, True, DEFAULT, budget_mb=100) == 7
    assert rank(10, 2, True, DEFAULT, budget_mb=100) is None  # at the target: not handed out
    assert rank(10, 0, False, DEFAULT, budget_mb=100) is None  # inactive assets never are


@pytest.mark.parametrize(
    ("budget_mb", "penalty"),
    [
        (0.0, 0.0),
        (1024.0, 0.0),  # up to 1 GiB: none
        (1024.5, 2.0),  # the first doubling begun
        (2048.0, 2.0),
        (2049.0, 4.0),  # the second: the most there is
        (60_000.0, 4.0),
    ],
)
def test_large_files_lose_rank_per_doubling_up_to_a_cap(budget_mb, penalty):
    assert size_penalty(budget_mb, DEFAULT) == penalty
    assert rank(10, 0, True, DEFAULT, budget_mb=budget_mb) == 10 - penalty
    assert size_penalty(budget_mb, LEGACY) == 0.0


def test_a_50_gb_priority_10_file_ranks_with_priority_6_first_copies():
    assert rank(10, 0, True, DEFAULT, budget_mb=50 * 1024) == 6
    assert rank(10, 1, True, DEFAULT, budget_mb=50 * 1024) == 3  # its second copy


def test_default_policy_levels():
    assert rank_levels(DEFAULT) == [float(r) for r in range(10, -7, -1)]
    assert rank_levels(LEGACY) == [float(r) for r in range(10, -3, -1)]


@given(policies, st.integers(1, 10), st.integers(0, 8), sizes)
def test_every_rank_is_one_of_the_known_levels(policy, priority, holders, budget_mb):
    value = rank(priority, holders, True, policy, budget_mb=budget_mb)
    assert value is None or value in rank_levels(policy)


@given(policies, st.integers(1, 10), st.integers(0, 8), st.booleans(), sizes)
def test_sql_rank_agrees_with_python_rank(policy, priority, holders, is_active, budget_mb):
    engine = _engine()
    expression = rank_sql(
        literal(priority, Integer),
        literal(holders, Integer),
        literal(is_active, Boolean),
        policy,
        budget_mb=literal(budget_mb, Float),
    )
    with engine.connect() as conn:
        assert conn.execute(select(expression)).scalar_one() == rank(
            priority, holders, is_active, policy, budget_mb=budget_mb
        )


_ENGINE = None


def _engine():
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = create_engine("sqlite://")
    return _ENGINE


@given(
    st.lists(st.floats(0, 5000), max_size=60),
    st.floats(0, 50_000),
    st.integers(1, 60),
)
def test_fit_respects_budget_slots_and_order(sizes, budget, slots):
    items = [Item(size) for size in sizes]
    chosen = fit(items, budget, slots)
    assert sum(item.budget_mb for item in chosen) <= budget + 1e-6
    assert len(chosen) <= slots
    positions = [next(i for i, x in enumerate(items) if x is c) for c in chosen]
    assert positions == sorted(positions)
    # Greedy: anything skipped before the slots ran out did not fit at that point.
    if len(chosen) < slots:
        taken = 0.0
        for item in items:
            if any(item is c for c in chosen):
                taken += item.budget_mb
            else:
                assert item.budget_mb > budget - taken - 1e-9


@pytest.mark.parametrize(
    ("sizes", "budget", "slots", "expected"),
    [
        ([100, 200, 300], 1000, 50, [100, 200, 300]),
        ([600, 500, 100], 1000, 50, [600, 100]),  # 500 no longer fits after 600
        ([100, 100, 100], 1000, 2, [100, 100]),
        ([2000], 1000, 50, []),
    ],
)
def test_fit_examples(sizes, budget, slots, expected):
    assert [i.budget_mb for i in fit([Item(s) for s in sizes], budget, slots)] == expected


ASSET_STATES_DRAWN = st.sampled_from(["active", "gone", "withdrawn", "unreachable", "expanded"])


@given(
    policies,
    st.integers(1, 10),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    ASSET_STATES_DRAWN,
    st.booleans(),
    sizes,
    st.integers(-2, 2),
)
def test_rank_of_over_asset_columns_agrees_with_asset_rank(
    policy, priority, copies, disputed, leases, state, magnet, budget_mb, delta
):
    """`queue.sql.rank_of` (what every UPDATE of assets sets) maps the row's columns as
    `queue.policy.asset_rank` does, with holders changed by the statement's delta."""
    from types import SimpleNamespace

    from sqlalchemy import Column, MetaData, String, Table

    from priorizer.queue.policy import asset_rank
    from priorizer.queue.sql import rank_of

    disputed = min(disputed, copies)
    table = Table(
        "assets",
        MetaData(),
        Column("priority", Integer),
        Column("copies", Integer),
        Column("disputed_copies", Integer),
        Column("leases", Integer),
        Column("state", String),
        Column("has_magnet_link", Boolean),
        Column("budget_mb", Float),
    )
    row = dict(
        priority=priority,
        copies=copies,
        disputed_copies=disputed,
        leases=leases,
        state=state,
        has_magnet_link=magnet,
        budget_mb=budget_mb,
    )
    with _engine().begin() as conn:
        table.create(conn, checkfirst=True)
        conn.execute(table.delete())
        conn.execute(table.insert().values(**row))
        got = conn.execute(select(rank_of(table.c, policy, holders_delta=delta))).scalar_one()
    moved = SimpleNamespace(**{**row, "leases": leases + delta})
    assert got == asset_rank(moved, policy)
