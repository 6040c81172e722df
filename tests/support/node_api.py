"""A node's calls and the reads that check them, through HTTP, for the tests of failures,
conflicting copies and open mode: `Api` with failures reported field by field, discards, the
ranking, and nodes proven by a first copy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.api import Api
from tests.support.factories import asset

SUM_A = "a" * 64
SUM_B = "b" * 64
SUM_C = "c" * 64


@dataclass
class NodeApi(Api):
    cycles_on_app_database: bool = True  # maintenance as the app's scheduler runs it

    def fail(self, asset_id: str, node_id: str, **fields: Any) -> httpx.Response:  # type: ignore[override]
        return self.client.post("/fail", json={"asset_id": asset_id, "node_id": node_id, **fields})

    def failed(self, asset_id: str, node_id: str, **fields: Any) -> dict[str, Any]:  # type: ignore[override]
        response = self.fail(asset_id, node_id, **fields)
        assert response.status_code == 200, response.text
        return response.json()

    def discarded(self, asset_id: str, node_id: str, reason: str) -> dict[str, Any]:
        body = {"asset_id": asset_id, "node_id": node_id, "reason": reason}
        response = self.client.post("/discard", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def ranking(self) -> dict[str, dict[str, Any]]:
        return {row["id"]: row for row in self.client.get("/ranking").json()}

    def prove(self, *node_ids: str) -> None:
        """Each node completes a copy of a small file of its own first: it then has a record
        (reports from nodes without one weigh a third)."""
        for node_id in node_ids:
            self.add(asset(f"proof-{node_id}", priority=10, size_mb=1))
            assert self.allocate(node_id, 0.001) == [f"asset-proof-{node_id}"]
            self.completed(f"asset-proof-{node_id}", node_id)
