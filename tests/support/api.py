"""`Api`: the service through HTTP in process (TestClient), as the API, dashboard and metrics
tests drive it: assets added straight into the database, then /allocate, /complete, /fail,
/renew, reads, pages, scrapes and maintenance cycles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from priorizer import metrics
from priorizer.allocation.models import Allocation
from priorizer.config import Settings
from priorizer.db import Database
from priorizer.maintenance.jobs import run_cycle
from tests.conftest import FakeClock
from tests.support.factories import add_assets, table_snapshot
from tests.support.html_page import Page
from tests.support.metrics_scrape import Scrape, parse


@dataclass
class Api:
    client: TestClient
    database: Database
    settings: Settings
    clock: FakeClock
    # Maintenance cycles run through the app's own `Database` (as its scheduler does) when
    # true, else through the test's `database` (another `Database` on the same URL).
    cycles_on_app_database: bool = False

    def add(self, *items: Any) -> None:
        add_assets(self.database, self.settings, list(items), self.clock())

    # --- Leases ---------------------------------------------------------------------------------

    def allocate(self, node_id: str, free_space_gb: float = 100) -> list[str]:
        """The ids of the assets leased, in the order served."""
        response = self.client.post(
            "/allocate", json={"node_id": node_id, "free_space_gb": free_space_gb}
        )
        assert response.status_code == 200, response.text
        return [lease["id"] for lease in response.json()]

    def allocate_sorted(self, node_id: str, free_space_gb: float = 100) -> list[str]:
        """The ids of the assets leased, sorted."""
        return sorted(self.allocate(node_id, free_space_gb))

    def post(self, path: str, **body: Any) -> httpx.Response:
        return self.client.post(path, json=body)

    def ok(self, path: str, **body: Any) -> dict[str, Any]:
        response = self.post(path, **body)
        assert response.status_code == 200, response.text
        return response.json()

    def complete(self, asset_id: str, node_id: str, **fields: Any) -> httpx.Response:
        return self.client.post(
            "/complete", json={"asset_id": asset_id, "node_id": node_id, **fields}
        )

    def completed(self, asset_id: str, node_id: str, **fields: Any) -> dict[str, Any]:
        response = self.complete(asset_id, node_id, **fields)
        assert response.status_code == 200, response.text
        return response.json()

    def fail(
        self, asset_id: str, node_id: str, reason: str = "HTTP 404", code: str | None = None
    ) -> httpx.Response:
        body = {"asset_id": asset_id, "node_id": node_id, "reason": reason, "reason_code": code}
        return self.client.post("/fail", json=body)

    def failed(
        self, asset_id: str, node_id: str, reason: str = "HTTP 404", code: str | None = None
    ) -> dict[str, Any]:
        response = self.fail(asset_id, node_id, reason, code)
        assert response.status_code == 200, response.text
        return response.json()

    def renew(self, node_id: str, asset_ids: list[str] | None = None) -> httpx.Response:
        body: dict[str, Any] = {"node_id": node_id}
        if asset_ids is not None:
            body["asset_ids"] = asset_ids
        return self.client.post("/renew", json=body)

    # --- Reads ----------------------------------------------------------------------------------

    def asset(self, asset_id: str) -> dict[str, Any]:
        response = self.client.get(f"/assets/{asset_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def node(self, node_id: str) -> dict[str, Any]:
        response = self.client.get(f"/nodes/{node_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def status(self) -> dict[str, Any]:
        response = self.client.get("/status")
        assert response.status_code == 200, response.text
        return response.json()

    def allocations(self, **filters: str) -> list[dict[str, Any]]:
        response = self.client.get("/allocations", params=filters)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def lease(self, asset_id: str, node_id: str) -> dict[str, Any]:
        """The node's newest allocation of the asset."""
        return self.allocations(asset_id=asset_id, node_id=node_id)[-1]

    # --- Dashboard and metrics ------------------------------------------------------------------

    def get_html(self, path: str) -> httpx.Response:
        response = self.client.get(path)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        return response

    def page(self, path: str = "/") -> Page:
        return Page.of(self.get_html(path).text)

    def scrape(self) -> Scrape:
        response = self.client.get("/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == metrics.CONTENT_TYPE
        return Scrape(parse(response.text), response.text)

    # --- The database ---------------------------------------------------------------------------

    def maintenance(self) -> dict[str, Any]:
        state = self.client.app.state  # type: ignore[attr-defined]
        database = state.database if self.cycles_on_app_database else self.database
        record = run_cycle(database=database, policy=state.maintenance, clock=self.clock)
        assert record is not None and record["outcome"] == "ok", record
        return record

    def lease_statuses(self) -> dict[str, int]:
        with self.database.read() as session:
            query = select(Allocation.status, func.count()).group_by(Allocation.status)
            return {status: count for status, count in session.execute(query)}

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        return table_snapshot(self.database)
