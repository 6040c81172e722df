"""The HTTP driver: the simulated fleet asks a running server (`--url`), as real nodes would,
and the catalog the measures judge is the server's own (GET /assets, page by page).

Point it at a scratch server loaded with the catalog to study, never at a campaign's: the
simulated nodes take leases and report copies there. A server that already has nodes or
copies is refused.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx

from priorizer.simulate.fleet import Download, Grant
from priorizer.simulate.measures import Item
from priorizer.simulate.scenario import SimulationError

PAGE = 1000  # assets per GET /assets page (the most it serves)
TIMEOUT_SECONDS = 60.0
# A 429 is waited out (its Retry-After, at most this long each time), this many times in a row.
MAX_WAIT_SECONDS = 60.0
MAX_RETRIES = 20
FAILURE_REASON = "simulated failure"


class RemoteDriver:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def allocate(self, *, node_id: str, free_space_gb: float, now: float) -> list[Grant]:
        answer = self._post("/allocate", {"free_space_gb": free_space_gb, "node_id": node_id})
        return [
            Grant(item["id"], item["reserved_mb"] if item["size_mb"] is None else item["size_mb"])
            for item in answer
        ]

    def settle(self, *, node_id: str, downloads: Sequence[Download], now: float) -> None:
        for download in downloads:
            body = {"asset_id": download.asset_id, "node_id": node_id}
            if download.fails:
                self._post("/fail", {**body, "reason": FAILURE_REASON})
            else:
                self._post("/complete", body)

    def hello(self, *, node_id: str, now: float) -> None:
        self._post("/renew", {"node_id": node_id, "asset_ids": []})

    def maintain(self, *, now: float) -> dict[str, Any] | None:
        """The server runs its own cycles, on its own clock."""
        return None

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        for _ in range(MAX_RETRIES):
            response = self._send("POST", path, json=body)
            if response.status_code != 429:
                return _json(response, path)
            time.sleep(min(MAX_WAIT_SECONDS, float(response.headers.get("retry-after", 1))))
        raise SimulationError(f"POST {path}: still rate limited (429) after {MAX_RETRIES} tries")

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise SimulationError(f"{method} {path}: {self.client.base_url} {error}") from error

    def status(self) -> dict[str, Any]:
        return dict(_json(self._send("GET", "/status"), "/status"))

    def read_catalog(self, *, unknown_size_mb: float) -> list[Item]:
        """The server's catalog, withdrawn assets left out: base priorities (an operator's, not
        the maintenance cycle's jitter), sizes with unknown ones as `unknown_size_mb`."""
        items: list[Item] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
            page = _json(self._send("GET", "/assets", params=params), "/assets")
            items += [
                Item(
                    row["id"],
                    unknown_size_mb if row["size_mb"] is None else row["size_mb"],
                    row["base_priority"],
                )
                for row in page["items"]
                if row["state"] != "withdrawn"
            ]
            cursor = page["next_cursor"]
            if cursor is None:
                return items


def _json(response: httpx.Response, path: str) -> Any:
    if response.is_success:
        return response.json()
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    hint = (
        " (the server wants node tokens: simulate against one without NODE_AUTH)"
        if (response.status_code in (401, 403))
        else ""
    )
    raise SimulationError(f"{path}: {response.status_code} {detail}{hint}"[:1000])


def check_fresh(status: dict[str, Any], url: str) -> None:
    """Refuse a server that already has a fleet: the simulation would start from its state,
    and would write its simulated leases and copies among real ones."""
    found = {
        "nodes": status.get("nodes", 0),
        "copies": status.get("copies", 0),
        "open leases": status.get("active_allocations", 0),
    }
    present = [f"{n:,} {what}" for what, n in found.items() if n]
    if present:
        raise SimulationError(
            f"{url} already has {', '.join(present)}: simulate against a fresh server that "
            "holds only the catalog (see docs/simulate.md), never a campaign's own"
        )
    if not status.get("assets"):
        raise SimulationError(f"{url} has an empty catalog: nothing to simulate")
