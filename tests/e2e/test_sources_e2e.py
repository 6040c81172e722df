"""Watched sources harvested by the scheduler of real `priorizer serve` processes, from a real
local CKAN portal and a real data.json origin: on SQLite alone, and two servers sharing one
PostgreSQL, which harvest each due run once."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import create_pg_database, drop_pg_database, pg_skip_reason
from tests.support.ckan_data import fixture_packages
from tests.support.ckan_portal import CkanPortal
from tests.support.origin import Origin, Route
from tests.support.priorizer_server import PriorizerServer, describe, run_cli

pytestmark = pytest.mark.slow

PACKAGES = fixture_packages()[:60]
FAST = {"SOURCES_CHECK_SECONDS": "1", "AUTO_UPDATE_INTERVAL_MINUTES": "10"}


@pytest.fixture(scope="module")
def portal() -> Iterator[CkanPortal]:
    with CkanPortal(PACKAGES) as running:
        yield running


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as running:
        running.add("/down/data.json", Route("status", status=503))
        yield running


@pytest.fixture
def pg_url() -> Iterator[str]:
    reason = pg_skip_reason()
    if reason:
        pytest.skip(reason)
    url = create_pg_database("priorizer_sources_e2e")
    try:
        yield url
    finally:
        drop_pg_database(url)


def add_source(env: dict[str, str], *args: str) -> dict[str, Any]:
    import json

    result = run_cli(["sources", "add", *args], env)
    assert result.returncode == 0, describe(result)
    return json.loads(result.stdout)


def wait_for(
    server: PriorizerServer, check: Callable[[dict[str, Any]], bool], timeout: float = 45
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with server.client() as http:
        while True:
            status = http.get("/status").json()
            if check(status):
                return status
            assert time.monotonic() < deadline, f"{status['sources']}\n{server.logs()}"
            time.sleep(0.3)


def runs_of(server: PriorizerServer, key: str) -> list[dict[str, Any]]:
    with server.client() as http:
        runs = http.get("/harvest/runs", params={"limit": 100}).json()
    return sorted((r for r in runs if r["source"] == key), key=lambda r: r["id"])


def test_a_watched_source_is_harvested_by_itself_twice_and_a_failing_one_backs_off(
    tmp_path: Path, portal: CkanPortal, origin: Origin
) -> None:
    server = PriorizerServer(tmp_path, FAST)
    env = dict(server.env)
    watched = add_source(env, portal.base_url, "--every", "4s")
    failing = add_source(env, origin.url("/down/data.json"), "--every", "2s")

    with server:
        status = wait_for(
            server,
            lambda s: (
                any(x["id"] == watched["id"] and x["last_run_id"] for x in s["sources"])
                and any(x["id"] == failing["id"] and x["failures"] >= 2 for x in s["sources"])
            ),
        )
        first = next(x for x in status["sources"] if x["id"] == watched["id"])
        assert first["last_state"] == "ok" and first["datasets"] == len(PACKAGES)
        broken = next(x for x in status["sources"] if x["id"] == failing["id"])
        assert "HTTP 503" in broken["last_error"]
        # Backing off: the wait doubles with each failure (2 s, then 4 s, 8 s ...).
        waited = datetime.fromisoformat(broken["next_run_at"]) - datetime.fromisoformat(
            broken["last_run_at"]
        )
        assert waited.total_seconds() >= 2 * 2 ** broken["failures"] - 0.01
        wait_for(
            server,
            lambda s: any(
                x["id"] == watched["id"] and x["last_run_id"] != first["last_run_id"]
                for x in s["sources"]
            ),
        )
        runs = runs_of(server, watched["key"])
    assert len(runs) >= 2 and all(r["state"] == "ok" for r in runs)
    assert runs[1]["since"] is not None  # the second run was incremental
    assert server.stopped_cleanly


def test_two_servers_on_postgresql_harvest_each_due_run_once(
    tmp_path: Path, portal: CkanPortal, pg_url: str
) -> None:
    env = {"DATABASE_URL": pg_url, **FAST}
    one = PriorizerServer(tmp_path, env, name="one")
    two = PriorizerServer(tmp_path, env, name="two")
    watched = add_source(dict(one.env), portal.base_url, "--every", "3s")

    with one, two:
        wait_for(
            one,
            lambda s: (
                len(runs_of(one, watched["key"])) >= 3
                and all(r["state"] != "running" for r in runs_of(one, watched["key"]))
            ),
            timeout=60,
        )
        runs = runs_of(one, watched["key"])
    starts = [datetime.fromisoformat(r["started_at"]) for r in runs]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    # One run per period, whichever server took it: never two in one period.
    assert all(gap >= 3 - 0.2 for gap in gaps), gaps
    assert all(r["state"] == "ok" for r in runs)
    assert one.stopped_cleanly and two.stopped_cleanly
