"""The allocation rules (allocation/policy.py), seen through the HTTP API, a property: the
invariants hold after any sequence of requests."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from priorizer.allocation.models import ALLOCATED, COMPLETED, HOLDING, Allocation
from priorizer.catalog.models import Asset, Dataset
from priorizer.db import Database
from priorizer.node.models import Node
from priorizer.web.app import create_app
from tests.conftest import make_settings
from tests.support.factories import add_assets, asset

# --- Property test: the invariants after any sequence of requests -----------------------------

# Sizes are multiples of 1/2 MiB so budget arithmetic is exact and the reference model below
# agrees with the service to the last bit; zero sizes are tested on their own.
SIZES = st.one_of(
    st.none(),
    st.sampled_from([100.0, 256.0, 512.0, 1024.0, 1536.0]),  # ties within a rank
    st.integers(1, 6000).map(lambda n: n / 2),
)
PRIORITIES = st.one_of(st.sampled_from([5, 8]), st.integers(1, 10))
NODES = st.sampled_from(["n0", "n1", "n2"])
FREE_GB = st.sampled_from([0.25, 0.5, 1, 1.5, 2, 4, 8])

catalogs = st.lists(st.tuples(SIZES, PRIORITIES), min_size=1, max_size=12)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("allocate"), NODES, FREE_GB),
        st.tuples(st.just("release"), NODES, st.integers(0, 7)),
    ),
    min_size=1,
    max_size=12,
)


def clear_tables(database: Database) -> None:
    with database.write() as session:
        for table in (Allocation, Node, Asset, Dataset):
            session.execute(table.__table__.delete())


def state(database: Database) -> tuple[dict[str, Any], list[Any]]:
    with database.read() as session:
        assets = {row.id: row for row in session.execute(select(Asset.__table__)).all()}
        holdings = session.execute(
            select(Allocation.__table__).where(Allocation.status.in_(HOLDING))
        ).all()
    return assets, holdings


def expected_allocation(
    assets: dict[str, Any],
    holdings: list[Any],
    node: str,
    free_gb: float,
    max_assets: int,
    smallest_first: bool,
) -> list[str]:
    """The rules, written out plainly: candidates by rank, then size (smallest first and id
    ascending, or largest first and id descending); each taken if it fits what is left of the
    budget."""
    held = {h.asset_id for h in holdings if h.node_id == node}
    reserved = sum(h.reserved_mb for h in holdings if h.node_id == node and h.status == ALLOCATED)
    remaining = max(0.0, free_gb * 1024 - reserved)
    candidates = [a for a in assets.values() if a.rank is not None and a.id not in held]
    if smallest_first:
        queue = sorted(candidates, key=lambda a: a.id)
        queue.sort(key=lambda a: a.budget_mb)
        queue.sort(key=lambda a: a.rank, reverse=True)
    else:
        queue = sorted(candidates, key=lambda a: (a.rank, a.budget_mb, a.id), reverse=True)
    chosen = []
    for a in queue:
        if len(chosen) >= max_assets:
            break
        if a.budget_mb <= remaining:
            chosen.append(a.id)
            remaining -= a.budget_mb
    return chosen


def check_invariants(database: Database, target: int, penalty: float, unknown_mb: float) -> None:
    """The counters match the holdings, and every rank is priority - penalty x holders - 2 per
    doubling begun past 1 GiB (at most 4), or none at the target."""
    assets, holdings = state(database)
    pairs = Counter((h.asset_id, h.node_id) for h in holdings)
    assert max(pairs.values(), default=0) <= 1, pairs
    open_per_asset = Counter(h.asset_id for h in holdings if h.status == ALLOCATED)
    copies_per_asset = Counter(h.asset_id for h in holdings if h.status == COMPLETED)
    for a in assets.values():
        assert a.leases == open_per_asset[a.id], a.id
        assert a.copies == copies_per_asset[a.id], a.id
        holders = a.leases + a.copies
        assert holders <= target, a.id
        doublings = 0 if a.budget_mb <= 1024 else 1 if a.budget_mb <= 2048 else 2
        expected = a.priority - penalty * holders - 2 * doublings
        assert a.rank == (expected if holders < target else None), a.id
        assert a.budget_mb == (unknown_mb if a.size_mb is None else a.size_mb)
    for h in holdings:
        size = assets[h.asset_id].size_mb
        assert h.reserved_mb == (unknown_mb if size is None else size)


# The property test runs on both databases. Hypothesis runs many examples inside one test
# item, and the `db_url` fixture is per item, so every example empties the tables itself.
@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    catalog=catalogs,
    steps=steps,
    target=st.integers(1, 3),
    penalty=st.sampled_from([0, 1.5, 3]),
    max_assets=st.integers(1, 5),
    fill_order=st.sampled_from(["smallest", "largest"]),
)
def test_invariants_hold_after_every_step(
    db_url, tmp_path, clock, catalog, steps, target, penalty, max_assets, fill_order
):
    settings = make_settings(
        db_url,
        tmp_path,
        replication_target=target,
        copy_penalty=penalty,
        max_assets_per_allocation=max_assets,
        fill_order=fill_order,
    )
    database = Database(db_url)
    try:
        clear_tables(database)
        items = [asset(n, size_mb=size, priority=p) for n, (size, p) in enumerate(catalog)]
        add_assets(database, settings, items, clock())
        unknown_mb = settings.unknown_size_mb
        with TestClient(create_app(settings, clock=clock)) as client:
            for kind, node, value in steps:
                assets, holdings = state(database)
                if kind == "allocate":
                    wanted = expected_allocation(
                        assets, holdings, node, value, max_assets, fill_order == "smallest"
                    )
                    reserved_before = sum(
                        h.reserved_mb
                        for h in holdings
                        if h.node_id == node and h.status == ALLOCATED
                    )
                    response = client.post(
                        "/allocate", json={"node_id": node, "free_space_gb": value}
                    )
                    assert response.status_code == 200
                    got = response.json()
                    assert [g["id"] for g in got] == wanted
                    assert len(got) <= max_assets
                    granted = sum(g["reserved_mb"] for g in got)
                    # Rule 1: a request never spends more than reported space minus open leases,
                    # so whenever it grants anything, the node's open leases fit what it reported.
                    # (They may exceed a later, smaller report: leases are never taken back.)
                    assert granted <= max(0.0, value * 1024 - reserved_before)
                    _, after = state(database)
                    reserved_after = sum(
                        h.reserved_mb for h in after if h.node_id == node and h.status == ALLOCATED
                    )
                    assert reserved_after == reserved_before + granted
                    if got:
                        assert reserved_after <= value * 1024
                else:
                    asset_id = f"asset-{value % len(catalog)}"
                    holds = any(
                        h.asset_id == asset_id and h.node_id == node and h.status == ALLOCATED
                        for h in holdings
                    )
                    response = client.post("/release", json={"asset_id": asset_id, "node_id": node})
                    assert response.status_code == (200 if holds else 404)
                check_invariants(database, target, penalty, unknown_mb)
    finally:
        database.dispose()
