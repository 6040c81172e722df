"""The allocation rules (allocation/policy.py), seen through the HTTP API: the order assets are
handed out in, and /ranking."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.allocation_rules import ids
from tests.support.factories import asset, table_snapshot

# --- Rule 2: order ----------------------------------------------------------------------------


def test_higher_priority_first(service, clock):
    svc = service()
    svc.add(asset("p3", priority=3), asset("p9", priority=9), asset("p6", priority=6), now=clock())

    assert ids(svc.allocate("node-a", 10)) == ["asset-p9", "asset-p6", "asset-p3"]


def test_small_budget_goes_to_the_highest_priorities(service, clock):
    svc = service()
    svc.add(
        *(asset(f"p{p}", priority=p, size_mb=300) for p in (2, 9, 5, 7, 1)),
        now=clock(),
    )

    # 1 GiB holds three 300 MiB files: the three highest priorities.
    assert ids(svc.allocate("node-a", 1)) == ["asset-p9", "asset-p7", "asset-p5"]


def test_copy_penalty_places_second_copy_between_first_copies(service, clock):
    svc = service(copy_penalty=3, replication_target=2)
    svc.add(
        asset("p10", priority=10, size_mb=500),
        asset("p8", priority=8, size_mb=100),
        asset("p6", priority=6, size_mb=100),
        now=clock(),
    )
    # A node with exactly 500 MiB takes the priority-10 file alone.
    assert ids(svc.allocate("node-a", 500 / 1024)) == ["asset-p10"]
    assert svc.asset("asset-p10")["rank"] == 7

    order = ids(svc.allocate("node-b", 10))

    # First copy of priority 8, then the second copy of priority 10 (rank 10 - 3 = 7), then 6.
    assert order == ["asset-p8", "asset-p10", "asset-p6"]


@pytest.mark.parametrize(
    ("copy_penalty", "expected"),
    [
        (0, ["asset-p10", "asset-p8", "asset-p6"]),
        (1, ["asset-p10", "asset-p8", "asset-p6"]),
        (3, ["asset-p8", "asset-p10", "asset-p6"]),
        (5, ["asset-p8", "asset-p6", "asset-p10"]),
    ],
)
def test_copy_penalty_sets_second_copy_rank(service, clock, copy_penalty, expected):
    svc = service(copy_penalty=copy_penalty, replication_target=2)
    svc.add(
        asset("p10", priority=10, size_mb=100),
        asset("p8", priority=8, size_mb=100),
        asset("p6", priority=6, size_mb=100),
        now=clock(),
    )
    assert ids(svc.allocate("node-a", 100 / 1024)) == ["asset-p10"]

    assert ids(svc.allocate("node-b", 10)) == expected
    assert svc.client.get("/assets/asset-p10").json()["rank"] is None


def test_copy_penalty_after_restart_with_new_policy(service, clock):
    """Ranks are recomputed when the service starts with another COPY_PENALTY."""
    svc = service(copy_penalty=3, replication_target=2)
    svc.add(asset("p10", priority=10), asset("p8", priority=8), now=clock())
    svc.allocate("node-a", 100 / 1024)
    assert svc.asset("asset-p10")["rank"] == 7

    restarted = service(copy_penalty=1, replication_target=2)

    assert restarted.asset("asset-p10")["rank"] == 9
    assert ids(restarted.allocate("node-b", 10)) == ["asset-p10", "asset-p8"]


def test_within_one_rank_smallest_file_goes_first(service, clock):
    svc = service()
    sizes = {"s100": 100, "s700": 700, "s400": 400, "s900": 900}
    svc.add(*(asset(name, size_mb=size) for name, size in sizes.items()), now=clock())

    # 1024 MiB: 100, then 400 (500 in all), then 700 no longer fits, nor 900.
    assert ids(svc.allocate("node-a", 1)) == ["asset-s100", "asset-s400"]
    # node-b: first copies of 700 and 900 (rank 5, smallest first), then the second copies of
    # 100 and 400 (rank 5 - 3 = 2).
    assert ids(svc.allocate("node-b", 10)) == [
        "asset-s700",
        "asset-s900",
        "asset-s100",
        "asset-s400",
    ]


def test_large_files_rank_lower_by_size(service, clock):
    svc = service()
    svc.add(
        asset("p10-5gb", priority=10, size_mb=5 * 1024),
        asset("p10-1.5gb", priority=10, size_mb=1536),
        asset("p8-100", priority=8, size_mb=100),
        asset("p7-100", priority=7, size_mb=100),
        asset("p6-100", priority=6, size_mb=100),
        asset("p5-100", priority=5, size_mb=100),
        now=clock(),
    )

    # 1.5 GiB (one doubling begun past 1 GiB) ranks 8, 5 GiB (capped at two) ranks 6; between
    # equal ranks the smaller file goes first.
    assert [(row["id"], row["rank"]) for row in svc.client.get("/ranking").json()] == [
        ("asset-p8-100", 8),
        ("asset-p10-1.5gb", 8),
        ("asset-p7-100", 7),
        ("asset-p6-100", 6),
        ("asset-p10-5gb", 6),
        ("asset-p5-100", 5),
    ]
    assert ids(svc.allocate("node-a", 10))[:5] == [
        "asset-p8-100",
        "asset-p10-1.5gb",
        "asset-p7-100",
        "asset-p6-100",
        "asset-p10-5gb",
    ]


def test_size_penalty_after_restart_with_new_policy(service, clock):
    """Ranks are recomputed when the service starts with another size rule."""
    svc = service()
    svc.add(asset("big", priority=10, size_mb=5 * 1024), now=clock())
    assert svc.asset("asset-big")["rank"] == 6

    assert service(size_penalty=0).asset("asset-big")["rank"] == 10
    assert service(size_penalty=1, size_penalty_max=10).asset("asset-big")["rank"] == 7
    assert service(size_penalty_from_mb=8192).asset("asset-big")["rank"] == 10


def test_a_node_reported_size_re_ranks_the_asset(service, clock):
    svc = service()
    svc.add(asset("unknown", priority=9, size_mb=None), now=clock())
    assert svc.asset("asset-unknown")["rank"] == 9  # 1 GiB assumed: no size penalty

    [lease] = svc.allocate("node-a", 10)
    done = svc.client.post(
        "/complete",
        json={"asset_id": lease["id"], "node_id": "node-a", "size_mb": 3000},
    )
    assert done.status_code == 200, done.text

    # One holder (9 - 3) and a size past two doublings of 1 GiB (- 4).
    assert svc.asset("asset-unknown")["rank"] == 2


def test_with_largest_fill_order_the_largest_file_that_fits_goes_first(service, clock):
    svc = service(fill_order="largest", size_penalty=0)
    sizes = {"s100": 100, "s700": 700, "s400": 400, "s2000": 2000}
    svc.add(*(asset(name, size_mb=size) for name, size in sizes.items()), now=clock())

    # 1024 MiB: 2000 does not fit, 700 does, then 400 no longer fits (700 + 400 > 1024), 100 does.
    assert ids(svc.allocate("node-a", 1)) == ["asset-s700", "asset-s100"]
    # node-b: first copies of 2000 and 400 (rank 5, largest first), then the second copies of
    # 700 and 100 (rank 5 - 3 = 2).
    assert ids(svc.allocate("node-b", 10)) == [
        "asset-s2000",
        "asset-s400",
        "asset-s700",
        "asset-s100",
    ]


def test_file_too_large_for_the_rest_of_the_budget_is_skipped_not_blocking(service, clock):
    svc = service()
    svc.add(
        asset("a", priority=9, size_mb=900),
        asset("b", priority=8, size_mb=500),
        asset("c", priority=7, size_mb=100),
        now=clock(),
    )

    # 900 fits, 500 no longer does, but the lower-ranked 100 still does.
    assert ids(svc.allocate("node-a", 1)) == ["asset-a", "asset-c"]


def test_priority_beats_size(service, clock):
    svc = service()
    svc.add(
        asset("small", priority=4, size_mb=200),
        asset("big", priority=5, size_mb=900),
        now=clock(),
    )

    # Rank first: the big priority-5 file, then the small one no longer fits.
    assert ids(svc.allocate("node-a", 1)) == ["asset-big"]


def test_equal_rank_and_size_ties_go_by_id(service, clock):
    svc = service()
    svc.add(*(asset(n, size_mb=100) for n in ("b", "a", "c")), now=clock())

    assert ids(svc.allocate("node-a", 10)) == ["asset-a", "asset-b", "asset-c"]


def test_with_largest_fill_order_ties_go_by_id_descending(service, clock):
    svc = service(fill_order="largest")
    svc.add(*(asset(n, size_mb=100) for n in ("b", "a", "c")), now=clock())

    assert ids(svc.allocate("node-a", 10)) == ["asset-c", "asset-b", "asset-a"]


# --- /ranking ---------------------------------------------------------------------------------


def varied_catalog() -> list[Any]:
    items = []
    for n in range(24):
        size = None if n % 7 == 0 else float(50 * (n % 5 + 1))
        items.append(asset(f"{n:02d}", priority=n % 10 + 1, size_mb=size))
    return items


def test_ranking_is_the_allocation_order(service, clock):
    svc = service(copy_penalty=3, replication_target=2)
    svc.add(*varied_catalog(), now=clock())
    # Some assets already held once, so second copies mix with first copies.
    svc.allocate("node-early", 0.5)

    ranking = svc.client.get("/ranking", params={"limit": 1000}).json()
    handed = svc.allocate("node-fresh", 1000)

    assert len(ranking) == 24
    assert [row["id"] for row in ranking] == ids(handed)
    ranks = [row["rank"] for row in ranking]
    assert ranks == sorted(ranks, reverse=True)


def test_ranking_limit_and_read_only(service, clock):
    svc = service()
    svc.add(*varied_catalog(), now=clock())
    svc.allocate("node-early", 0.5)
    before = table_snapshot(svc.database)

    full = svc.client.get("/ranking", params={"limit": 1000}).json()
    top = svc.client.get("/ranking", params={"limit": 5}).json()
    default = svc.client.get("/ranking").json()

    assert top == full[:5]
    assert default == full[:50]
    assert table_snapshot(svc.database) == before


def test_ranking_leaves_out_assets_at_target(service, clock):
    svc = service(replication_target=1)
    svc.add(asset(1, priority=9), asset(2), now=clock())
    assert ids(svc.allocate("node-a", 100 / 1024)) == ["asset-1"]

    assert [row["id"] for row in svc.client.get("/ranking").json()] == ["asset-2"]
