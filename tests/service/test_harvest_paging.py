"""Portals that ignore `fq`, `sort` or `start`: the harvest ends with every dataset, or stops
with a clear error; never loops. Served by a real local HTTP portal
(tests/support/ckan_portal.py) with the recorded data.gov and EnviDat packages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from priorizer.catalog.models import Dataset
from priorizer.db import Database
from priorizer.harvest import jobs as harvest_jobs
from priorizer.harvest import service
from priorizer.harvest.models import FAILED, OK
from priorizer.harvest.paging import KEYSET, OFFSET, Stalled
from priorizer.scoring import policy as scoring_policy
from tests.conftest import FakeClock
from tests.service.test_harvest import QUEUE, client_for
from tests.support.ckan_data import fixture_packages
from tests.support.ckan_portal import CkanPortal

ROWS = 25
PACKAGES = fixture_packages()  # 375: data.gov's agriculture group and EnviDat
# Far more requests than an honest listing needs: past this, the harvest is looping.
REQUEST_CEILING = 3 * len(PACKAGES) // ROWS + 20


@pytest.fixture(scope="module")
def portal() -> Iterator[CkanPortal]:
    with CkanPortal(PACKAGES) as running:
        yield running


@pytest.fixture
def context(database: Database, clock: FakeClock) -> service.Context:
    return service.Context(
        database=database, policy=scoring_policy.load(), queue=QUEUE, clock=clock
    )


@pytest.fixture(autouse=True)
def honest_again(portal: CkanPortal) -> Iterator[None]:
    portal.requests.clear()
    yield
    portal.ignores = set()
    portal.on_search = None
    portal.add(*PACKAGES)


def harvest(context: service.Context, portal: CkanPortal) -> dict[str, Any]:
    """One harvest, in a thread that must end on its own well within the time allowed."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            with client_for(portal) as client:
                outcome["run"] = harvest_jobs.harvest(
                    context, client=client, source=service.Source(portal.base_url), rows=ROWS
                )
        except Exception as error:
            outcome["error"] = error

    def ceiling(_params: dict) -> None:
        assert len(portal.searches()) < REQUEST_CEILING, "the harvest is looping"

    portal.on_search = ceiling
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the harvest did not end"
    return outcome


def stored_ids(database: Database) -> set[str]:
    with database.read() as session:
        return set(session.execute(select(Dataset.id)).scalars())


def last_run(database: Database) -> Any:
    with database.read() as session:
        return service.recent_runs(session, limit=1)[0]


@pytest.mark.parametrize(
    ("ignored", "why"),
    [
        ({"fq", "sort"}, "ignores the sort"),
        ({"fq"}, "ignores the modification filter"),
        ({"sort"}, "ignores the sort"),
    ],
)
def test_a_portal_ignoring_the_filter_or_the_sort_is_harvested_whole(
    context, portal, database, ignored, why
):
    portal.ignores = set(ignored)

    outcome = harvest(context, portal)

    assert "error" not in outcome, outcome.get("error")
    run = outcome["run"]
    assert stored_ids(database) == {p["id"] for p in PACKAGES}
    assert run["state"] == OK
    assert run["datasets"] == len(PACKAGES)  # each once: repeats were not stored again
    assert run["paging"] == OFFSET
    assert why in run["paging_note"] and "fell back to offset paging" in run["paging_note"]
    assert run["removed_upstream"] == 0


def test_an_honest_portal_is_paged_by_the_keyset(context, portal, database):
    run = harvest(context, portal)["run"]

    assert run["paging"] == KEYSET and run["paging_note"] is None
    assert run["datasets"] == len(PACKAGES)
    assert all("metadata_modified:[" in s.get("fq", "") for s in portal.searches()[1:])


def test_removals_are_still_noticed_on_a_portal_that_ignores_fq_and_sort(
    context, portal, database, clock
):
    portal.ignores = {"fq", "sort"}
    harvest(context, portal)
    clock.advance(hours=6)
    gone = [PACKAGES[0]["id"], PACKAGES[200]["id"]]
    portal.remove(*gone)

    run = harvest(context, portal)["run"]

    assert run["state"] == OK and run["removed_upstream"] == 2
    with database.read() as session:
        removed = session.execute(select(Dataset.id).where(Dataset.removed_at.is_not(None)))
        assert sorted(removed.scalars()) == sorted(gone)


def test_a_portal_that_cannot_be_paged_stops_with_a_clear_error_keeping_what_it_stored(
    context, portal, database
):
    portal.ignores = {"fq", "sort", "start"}  # the same first page, whatever is asked

    outcome = harvest(context, portal)

    error = outcome["error"]
    assert isinstance(error, Stalled)
    assert "no new dataset in 5 pages in a row" in str(error)
    assert len(portal.searches()) <= 8  # a page, the fallback, then five without progress
    run = last_run(database)
    assert run["state"] == FAILED and "cannot be paged" in run["error"]
    assert run["paging"] == OFFSET
    with database.read() as session:
        assert session.execute(select(func.count()).select_from(Dataset)).scalar() == ROWS
    # A failed run is not continued: the next harvest starts afresh (and fails the same way).
    assert isinstance(harvest(context, portal)["error"], Stalled)
    assert last_run(database)["id"] == run["id"] + 1
