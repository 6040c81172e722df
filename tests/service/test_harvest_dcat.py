"""Harvesting the recorded DCAT-US data.json catalogs from a real local HTTP origin into a
real database (SQLite file and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from priorizer.catalog.models import Asset, Dataset
from priorizer.db import Database
from priorizer.harvest import dispatch, service
from priorizer.harvest.datajson import DataJsonError
from priorizer.harvest.models import INTERRUPTED, OK
from priorizer.scoring import policy as scoring_policy
from tests.conftest import FakeClock
from tests.service.test_harvest import QUEUE
from tests.support.dcat import CATALOGS, catalog, catalog_bytes, expected
from tests.support.origin import Origin, Route


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as running:
        for name in CATALOGS:
            running.add(f"/{name}/data.json", Route("file", body=catalog_bytes(name)))
        yield running


@pytest.fixture
def context(database: Database, clock: FakeClock) -> service.Context:
    return service.Context(
        database=database, policy=scoring_policy.load(), queue=QUEUE, clock=clock
    )


def harvest(context: service.Context, url: str, **options: Any) -> dict[str, Any]:
    source = dispatch.source_for(url)
    assert source.kind == dispatch.DCAT
    return dispatch.harvest(context, source, backoff_seconds=0.01, attempts=3, **options)


def counts(database: Database) -> tuple[int, int]:
    with database.read() as session:
        datasets = session.execute(select(func.count()).select_from(Dataset)).scalar_one()
        assets = session.execute(select(func.count()).select_from(Asset)).scalar_one()
    return datasets, assets


@pytest.mark.parametrize("name", CATALOGS)
def test_each_recorded_catalog_accounts_for_every_distribution(context, origin, database, name):
    want = expected(catalog(name))

    run = harvest(context, origin.url(f"/{name}/data.json"))

    assert run["state"] == OK and run["paging"] == "stream"
    written = run["assets_created"] + run["assets_updated"]
    skipped = sum(run["skipped_resources"].values())
    assert written + run["shared_urls"] + skipped == want.distributions
    assert run["skipped_resources"].get("distribution without a URL", 0) == want.without_url
    assert run["datasets"] == want.datasets
    with database.read() as session:
        urls = set(session.execute(select(Asset.url)).scalars())
    assert urls == want.urls
    assert run["pages_to_discover"] >= len(want.page_urls)
    assert counts(database) == (want.datasets, len(want.urls))


def test_a_second_harvest_adds_nothing_and_a_vanished_dataset_is_marked(
    context, origin, database, clock
):
    name = "usaid_2025-02-01"
    url = origin.url(f"/{name}/data.json")
    first = harvest(context, url)
    before = counts(database)
    clock.advance(hours=1)

    second = harvest(context, url)

    assert counts(database) == before
    assert second["assets_created"] == 0 and second["removed_upstream"] == 0
    assert second["assets_updated"] == first["assets_created"]

    document = catalog(name)
    gone = document["dataset"].pop(0)
    origin.add(f"/{name}/data.json", Route("file", body=json.dumps(document).encode()))
    try:
        clock.advance(hours=1)
        third = harvest(context, url)
    finally:
        origin.add(f"/{name}/data.json", Route("file", body=catalog_bytes(name)))
    assert third["removed_upstream"] == 1
    with database.read() as session:
        removed = session.execute(select(Dataset.id).where(Dataset.removed_at.is_not(None)))
        assert list(removed.scalars()) == [gone["identifier"]]
    assert counts(database) == before  # kept, with its assets


def test_a_version_1_0_catalog_a_bare_array(context, origin, database):
    items = [
        {
            "identifier": "v10-a",
            "title": "Old style",
            "publisher": "An agency",
            "accessURL": "https://x.gov/a.zip",
            "format": "application/zip",
            "modified": "R/P1D",
        }
    ]
    url = origin.add("/v10/data.json", Route("file", body=json.dumps(items).encode()))

    run = harvest(context, url)

    assert run["state"] == OK and run["assets_created"] == 1 and run["pages_to_discover"] == 0
    with database.read() as session:
        asset = session.execute(select(Asset)).scalar_one()
        dataset = session.get(Dataset, "v10-a")
    assert asset.url == "https://x.gov/a.zip" and asset.format == "ZIP"
    assert dataset is not None and dataset.modified_at == context.clock()


def test_a_catalog_cut_short_stops_the_run_and_marks_nothing(context, origin, database, clock):
    name = "dhs_2025-02-01"
    url = origin.url(f"/{name}/data.json")
    harvest(context, url)
    clock.advance(hours=1)
    whole = catalog_bytes(name)
    origin.add(f"/{name}/data.json", Route("file", body=whole[: len(whole) * 9 // 10]))
    try:
        with pytest.raises(DataJsonError, match="not valid JSON"):
            harvest(context, url)
    finally:
        origin.add(f"/{name}/data.json", Route("file", body=whole))
    with database.read() as session:
        run = service.recent_runs(session, limit=1)[0]
        removed = session.execute(
            select(func.count()).select_from(Dataset).where(Dataset.removed_at.is_not(None))
        ).scalar_one()
    assert run["state"] == INTERRUPTED and "not valid JSON" in run["error"]
    assert run["datasets"] > 0  # the batches read before the cut were stored
    assert removed == 0


def test_a_server_error_is_retried_and_a_refusal_is_not(context, origin, database):
    before = len(origin.log("/missing/data.json")), len(origin.log("/down/data.json"))
    url = origin.add("/down/data.json", Route("status", status=503))
    with pytest.raises(DataJsonError, match="failed 3 times"):
        harvest(context, url)
    url = origin.add("/missing/data.json", Route("status", status=404))
    with pytest.raises(DataJsonError, match="HTTP 404"):
        harvest(context, url)
    after = len(origin.log("/missing/data.json")), len(origin.log("/down/data.json"))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 3)


def test_a_data_json_takes_no_organization_or_query():
    with pytest.raises(Exception, match="read whole"):
        dispatch.source_for("https://x.gov/data.json", organization="noaa-gov")
    assert dispatch.kind_of("https://catalog.data.gov") == dispatch.CKAN
    assert dispatch.kind_of("https://www.usaid.gov/data.json") == dispatch.DCAT
