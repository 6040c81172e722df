"""A node's calls and the reads that check them, through HTTP, for the tests of failures,
conflicting copies and open mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient

from priorizer.config import Settings
from priorizer.db import Database
from priorizer.maintenance.jobs import run_cycle
from tests.conftest import FakeClock
from tests.support.factories import add_assets, asset, table_snapshot

SUM_A = "a" * 64
SUM_B = "b" * 64
SUM_C = "c" * 64


@dataclass
class NodeApi:
    client: TestClient
    database: Database
    settings: Settings
    clock: FakeClock

    def add(self, *items: Any) -> None:
        add_assets(self.database, self.settings, list(items), self.clock())

    def allocate(self, node_id: str, free_space_gb: float = 100) -> list[str]:
        response = self.client.post(
            "/allocate", json={"node_id": node_id, "free_space_gb": free_space_gb}
        )
        assert response.status_code == 200, response.text
        return [lease["id"] for lease in response.json()]

    def complete(self, asset_id: str, node_id: str, **fields: Any) -> httpx.Response:
        return self.client.post(
            "/complete", json={"asset_id": asset_id, "node_id": node_id, **fields}
        )

    def completed(self, asset_id: str, node_id: str, **fields: Any) -> dict[str, Any]:
        response = self.complete(asset_id, node_id, **fields)
        assert response.status_code == 200, response.text
        return response.json()

    def fail(self, asset_id: str, node_id: str, **fields: Any) -> httpx.Response:
        return self.client.post("/fail", json={"asset_id": asset_id, "node_id": node_id, **fields})

    def failed(self, asset_id: str, node_id: str, **fields: Any) -> dict[str, Any]:
        response = self.fail(asset_id, node_id, **fields)
        assert response.status_code == 200, response.text
        return response.json()

    def discarded(self, asset_id: str, node_id: str, reason: str) -> dict[str, Any]:
        body = {"asset_id": asset_id, "node_id": node_id, "reason": reason}
        response = self.client.post("/discard", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def asset(self, asset_id: str) -> dict[str, Any]:
        response = self.client.get(f"/assets/{asset_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def node(self, node_id: str) -> dict[str, Any]:
        response = self.client.get(f"/nodes/{node_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def status(self) -> dict[str, Any]:
        return self.client.get("/status").json()

    def ranking(self) -> dict[str, dict[str, Any]]:
        return {row["id"]: row for row in self.client.get("/ranking").json()}

    def allocations(self, **filters: str) -> list[dict[str, Any]]:
        response = self.client.get("/allocations", params=filters)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def lease(self, asset_id: str, node_id: str) -> dict[str, Any]:
        """The node's newest allocation of the asset."""
        return self.allocations(asset_id=asset_id, node_id=node_id)[-1]

    def prove(self, *node_ids: str) -> None:
        """Each node completes a copy of a small file of its own first: it then has a record
        (reports from nodes without one weigh a third)."""
        for node_id in node_ids:
            self.add(asset(f"proof-{node_id}", priority=10, size_mb=1))
            assert self.allocate(node_id, 0.001) == [f"asset-proof-{node_id}"]
            self.completed(f"asset-proof-{node_id}", node_id)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        return table_snapshot(self.database)

    def maintenance(self) -> dict[str, Any]:
        state = self.client.app.state  # type: ignore[attr-defined]
        record = run_cycle(database=state.database, policy=state.maintenance, clock=self.clock)
        assert record is not None and record["outcome"] == "ok", record
        return record
