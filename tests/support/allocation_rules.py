"""`Service`, the service as the allocation rules tests (tests/api/allocation_rules/) drive it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from priorizer.config import Settings
from priorizer.db import Database
from tests.support.factories import add_assets


@dataclass
class Service:
    client: TestClient
    database: Database
    settings: Settings

    def add(self, *items: Any, now: Any) -> None:
        add_assets(self.database, self.settings, list(items), now)

    def allocate(self, node_id: str, free_space_gb: float) -> list[dict[str, Any]]:
        response = self.client.post(
            "/allocate", json={"node_id": node_id, "free_space_gb": free_space_gb}
        )
        assert response.status_code == 200, response.text
        return response.json()

    def release(self, asset_id: str, node_id: str) -> int:
        return self.client.post(
            "/release", json={"asset_id": asset_id, "node_id": node_id}
        ).status_code

    def asset(self, asset_id: str) -> dict[str, Any]:
        return self.client.get(f"/assets/{asset_id}").json()


def ids(leases: list[dict[str, Any]]) -> list[str]:
    return [lease["id"] for lease in leases]
