"""Watched sources harvested by `sources.jobs.harvest_due` (what the scheduler runs) from a
real local CKAN portal and a real data.json origin, into real databases; time is a FakeClock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from priorizer.db import Database
from priorizer.errors import Conflict, Invalid
from priorizer.harvest import service as harvest_service
from priorizer.scoring import policy as scoring_policy
from priorizer.sources import jobs as sources_jobs
from priorizer.sources import service
from priorizer.sources.models import WatchedSource
from tests.conftest import FakeClock
from tests.service.test_harvest import QUEUE
from tests.support.ckan_data import package, resource
from tests.support.ckan_portal import CkanPortal
from tests.support.dcat import catalog_bytes
from tests.support.origin import Origin, Route

FAST = {"attempts": 1, "backoff_seconds": 0.01}


@pytest.fixture(scope="module")
def portal() -> Iterator[CkanPortal]:
    packages = [
        package(f"ds-{n}", resources=[resource(url=f"https://x.org/{n}.csv")]) for n in range(6)
    ]
    with CkanPortal(packages) as running:
        yield running


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as running:
        running.add("/usaid/data.json", Route("file", body=catalog_bytes("usaid_2025-02-01")))
        yield running


@pytest.fixture
def context(database: Database, clock: FakeClock) -> harvest_service.Context:
    return harvest_service.Context(
        database=database, policy=scoring_policy.load(), queue=QUEUE, clock=clock
    )


def watch(database: Database, clock: FakeClock, url: str, **options) -> int:
    with database.write() as session:
        source = service.add_source(
            session,
            url=url,
            kind=options.pop("kind", None),
            organization=options.pop("organization", None),
            query=options.pop("query", None),
            every_seconds=options.pop("every", 3600.0),
            full_every_seconds=options.pop("full_every", None),
            now=clock(),
        )
        return source.id


def sources(database: Database) -> dict[int, dict]:
    with database.read() as session:
        return {s["id"]: s for s in service.list_sources(session)}


def test_a_source_is_harvested_when_due_then_once_per_period(context, portal, database, clock):
    source_id = watch(database, clock, portal.base_url, every=3600.0, full_every=86_400.0)

    first = sources_jobs.harvest_due(context, options=FAST)
    assert [o["state"] for o in first] == ["ok"]
    assert sources_jobs.harvest_due(context, options=FAST) == []  # not due again yet
    shown = sources(database)[source_id]
    assert shown["datasets"] == 6 and shown["last_state"] == "ok" and shown["failures"] == 0
    assert shown["next_run_at"] == clock() + timedelta(hours=1)

    clock.advance(hours=1)
    second = sources_jobs.harvest_due(context, options=FAST)
    assert [o["state"] for o in second] == ["ok"]
    assert second[0]["since"] is not None  # incremental between full runs
    assert second[0]["removed_upstream"] is None

    portal.remove("ds-5")
    try:
        clock.advance(days=1)
        third = sources_jobs.harvest_due(context, options=FAST)
    finally:
        portal.add(package("ds-5", resources=[resource(url="https://x.org/5.csv")]))
    assert third[0]["since"] is None and third[0]["removed_upstream"] == 1  # a full run
    assert sources(database)[source_id]["removed_upstream"] == 1


def test_a_failing_source_backs_off_and_shows_its_error(context, origin, database, clock):
    url = origin.add("/broken/data.json", Route("status", status=503))
    source_id = watch(database, clock, url, every=60.0)

    outcome = sources_jobs.harvest_due(context, options=FAST)

    assert outcome[0]["state"] == "failed" and "503" in outcome[0]["error"]
    shown = sources(database)[source_id]
    assert shown["failures"] == 1 and "HTTP 503" in shown["last_error"]
    assert shown["next_run_at"] == clock() + timedelta(seconds=120)
    clock.advance(seconds=60)
    assert sources_jobs.harvest_due(context, options=FAST) == []  # backing off: not yet
    clock.advance(seconds=60)
    sources_jobs.harvest_due(context, options=FAST)
    shown = sources(database)[source_id]
    assert shown["failures"] == 2
    assert shown["next_run_at"] == clock() + timedelta(seconds=240)

    origin.add("/broken/data.json", Route("file", body=catalog_bytes("usaid_2025-02-01")))
    clock.advance(seconds=240)
    assert sources_jobs.harvest_due(context, options=FAST)[0]["state"] == "ok"
    shown = sources(database)[source_id]
    assert shown["failures"] == 0 and shown["last_error"] is None and shown["datasets"] == 316


def test_two_processes_take_each_due_run_once(context, origin, database, settings, clock):
    url = origin.url("/usaid/data.json")
    watch(database, clock, url, every=3600.0)
    outcomes: dict[str, list] = {}
    start = threading.Barrier(2)

    def process(runner: str) -> None:
        own = Database(settings.sqlalchemy_url)  # a connection pool of its own, as a process has
        try:
            mine = harvest_service.Context(
                database=own, policy=context.policy, queue=QUEUE, clock=clock
            )
            start.wait()
            outcomes[runner] = sources_jobs.harvest_due(mine, runner=runner, options=FAST)
        finally:
            own.dispose()

    threads = [threading.Thread(target=process, args=(f"p{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(len(o) for o in outcomes.values()) == [0, 1]
    with database.read() as session:
        assert len(harvest_service.recent_runs(session, limit=10)) == 1
        assert session.execute(select(WatchedSource.leased_by)).scalar_one() is None


def test_adding_removing_and_bad_input(database, clock, portal):
    source_id = watch(database, clock, portal.base_url, organization="noaa-gov")
    with pytest.raises(Conflict):
        watch(database, clock, portal.base_url, organization="noaa-gov")
    watch(database, clock, portal.base_url)  # another scope of the same portal
    with pytest.raises(Invalid):
        service.parse_every("every day")
    with pytest.raises(Invalid):
        service.parse_every("0s")
    assert service.parse_every("6h") == 21_600 and service.parse_every("1.5d") == 129_600
    with database.write() as session, pytest.raises(Conflict, match="several sources"):
        service.remove_source(session, ref=portal.base_url)
    with database.write() as session:
        service.remove_source(session, ref=str(source_id))
    assert len(sources(database)) == 1
