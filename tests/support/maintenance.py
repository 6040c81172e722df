"""`Env`, the service as the maintenance tests (tests/service/test_maintenance_*.py) drive it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from priorizer.config import Settings
from priorizer.db import Database
from priorizer.maintenance.jobs import run_cycle
from priorizer.maintenance.models import MaintenanceRun
from priorizer.maintenance.service import MaintenancePolicy
from priorizer.queue.policy import queue_policy
from tests.conftest import FakeClock
from tests.support.factories import add_assets


@dataclass
class Env:
    """One service (app, database, settings) over the test's database, on the fake clock."""

    client: TestClient
    database: Database
    settings: Settings
    clock: FakeClock

    @property
    def policy(self) -> MaintenancePolicy:
        return MaintenancePolicy.from_settings(self.settings, queue_policy(self.settings))

    def cycle(self, *, scheduled: bool = False) -> dict[str, Any] | None:
        return run_cycle(
            database=self.database, policy=self.policy, clock=self.clock, scheduled=scheduled
        )

    def add(self, *items: Any) -> None:
        add_assets(self.database, self.settings, list(items), self.clock())

    def allocate(self, node_id: str, free_space_gb: float) -> list[str]:
        response = self.client.post(
            "/allocate", json={"node_id": node_id, "free_space_gb": free_space_gb}
        )
        assert response.status_code == 200, response.text
        return sorted(lease["id"] for lease in response.json())

    def post(self, path: str, **body: Any) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def complete(self, asset_id: str, node_id: str) -> dict[str, Any]:
        return self.post("/complete", asset_id=asset_id, node_id=node_id)

    def get(self, path: str) -> Any:
        response = self.client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def asset(self, asset_id: str) -> dict[str, Any]:
        return self.get(f"/assets/{asset_id}")

    def node(self, node_id: str) -> dict[str, Any]:
        return self.get(f"/nodes/{node_id}")

    def assets(self) -> list[dict[str, Any]]:
        return self.get("/assets?limit=1000")["items"]

    def runs(self) -> list[MaintenanceRun]:
        with self.database.read() as session:
            return list(
                session.execute(select(MaintenanceRun).order_by(MaintenanceRun.id)).scalars()
            )
