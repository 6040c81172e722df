"""The allocation rules (allocation/policy.py), seen through the HTTP API: one lease per node and
asset, the replication target, release."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.allocation_rules import ids
from tests.support.factories import asset, table_snapshot

# --- Rule 3: one lease per node and asset, replication target ---------------------------------


def test_never_two_open_leases_of_one_asset_on_one_node(service, clock):
    # With no penalty, the asset keeps its top rank after the first lease.
    svc = service(copy_penalty=0, replication_target=3)
    svc.add(asset(1, priority=10), asset(2, priority=1), now=clock())

    first = svc.allocate("node-a", 10)
    second = svc.allocate("node-a", 100)

    assert ids(first) == ["asset-1", "asset-2"]
    assert second == []
    leases = svc.client.get("/allocations", params={"node_id": "node-a"}).json()["items"]
    assert Counter(lease["asset_id"] for lease in leases) == {"asset-1": 1, "asset-2": 1}
    assert ids(svc.allocate("node-b", 10)) == ["asset-1", "asset-2"]


@pytest.mark.parametrize("target", [1, 2, 3])
def test_never_more_holders_than_the_replication_target(service, clock, target):
    svc = service(replication_target=target, copy_penalty=0)
    svc.add(asset(1), now=clock())

    got = [svc.allocate(f"node-{n}", 10) for n in range(5)]

    assert [len(g) for g in got] == [1] * target + [0] * (5 - target)
    detail = svc.asset("asset-1")
    assert detail["leases"] == target
    assert len(detail["open_leases"]) == target
    assert detail["rank"] is None
    assert svc.client.get("/ranking").json() == []


def test_target_counts_imported_copies(service, clock):
    from priorizer.queue.policy import queue_policy
    from priorizer.seed import service as seed_service

    svc = service(replication_target=2)
    svc.add(asset(1, priority=9), asset(2, priority=5), now=clock())
    with svc.database.write() as session:
        seed_service.import_seed(
            session,
            assets=[],
            allocations=seed_service.parse_allocations(
                [{"asset_id": "asset-1", "node_id": "old-node", "status": "completed"}],
                source="test",
            ),
            queue=queue_policy(svc.settings),
            lease_seconds=3600,
            now=clock(),
        )

    # One copy already: asset-1 ranks 9 - 3 = 6, still ahead of asset-2 (5).
    assert ids(svc.allocate("node-a", 10)) == ["asset-1", "asset-2"]
    # Copy + lease = target 2: asset-1 is no longer handed out.
    assert ids(svc.allocate("node-b", 10)) == ["asset-2"]
    assert svc.asset("asset-1")["rank"] is None
    assert (svc.asset("asset-1")["copies"], svc.asset("asset-1")["leases"]) == (1, 1)


# --- Rule 6: release --------------------------------------------------------------------------


def test_released_asset_goes_back_to_the_pool(service, clock):
    svc = service(replication_target=1)
    svc.add(asset(1), now=clock())
    assert ids(svc.allocate("node-a", 10)) == ["asset-1"]
    assert svc.allocate("node-b", 10) == []

    assert svc.release("asset-1", "node-a") == 200
    detail = svc.asset("asset-1")
    assert (detail["leases"], detail["rank"]) == (0, 5)
    assert [h["status"] for h in detail["history"]] == ["released"]

    assert ids(svc.allocate("node-b", 10)) == ["asset-1"]


def test_release_twice_is_404_and_changes_nothing(service, clock):
    svc = service()
    svc.add(asset(1), now=clock())
    svc.allocate("node-a", 10)
    assert svc.release("asset-1", "node-a") == 200
    before = table_snapshot(svc.database)

    assert svc.release("asset-1", "node-a") == 404

    assert table_snapshot(svc.database) == before
    assert svc.asset("asset-1")["leases"] == 0


def test_release_by_another_node_is_404(service, clock):
    svc = service()
    svc.add(asset(1), now=clock())
    svc.allocate("node-a", 10)

    assert svc.release("asset-1", "node-b") == 404
    assert svc.asset("asset-1")["leases"] == 1
