"""Harvesting from a real local CKAN-compatible HTTP server (tests/support/ckan_portal.py)
into a real database (SQLite file and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from priorizer.catalog import service as catalog_service
from priorizer.catalog.models import Asset, Dataset
from priorizer.db import Database
from priorizer.errors import Conflict
from priorizer.harvest import jobs as harvest_jobs
from priorizer.harvest import reader, service
from priorizer.harvest.ckan import CkanClient, CkanError
from priorizer.harvest.mapping import map_packages
from priorizer.harvest.models import INTERRUPTED, OK
from priorizer.queue.policy import QueuePolicy
from priorizer.scoring import policy as scoring_policy
from priorizer.scoring.jobs import rescore
from tests.conftest import FakeClock
from tests.support.ckan_data import hostile_catalog, package, resource
from tests.support.ckan_portal import CkanPortal, solr_time

QUEUE = QueuePolicy(replication_target=2, copy_penalty=3.0, unknown_size_mb=1024.0)
ROWS = 40  # small pages: several per catalog


@pytest.fixture
def portal() -> Iterator[CkanPortal]:
    with CkanPortal(hostile_catalog(300, seed=7)) as running:
        yield running


@pytest.fixture
def context(database: Database, clock: FakeClock) -> service.Context:
    return service.Context(
        database=database, policy=scoring_policy.load(), queue=QUEUE, clock=clock
    )


def client_for(portal: CkanPortal, **options: Any) -> CkanClient:
    options = {"attempts": 3, "backoff_seconds": 0.01, "max_backoff_seconds": 0.02, **options}
    return CkanClient(portal.base_url, **options)


def run(context: service.Context, portal: CkanPortal, **options: Any) -> dict[str, Any]:
    client_options = options.pop("client", {})
    with client_for(portal, **client_options) as client:
        return harvest_jobs.harvest(
            context,
            client=client,
            source=options.pop("source", service.Source(portal.base_url)),
            rows=options.pop("rows", ROWS),
            **options,
        )


def catalog(database: Database) -> dict[str, tuple[Any, ...]]:
    """The catalog as a harvest leaves it, without times (which differ between runs)."""
    with database.read() as session:
        assets = {
            a.id: (a.url, a.name, a.format, a.size_mb, a.dataset_id, a.base_priority, a.state)
            for a in session.execute(select(Asset)).scalars()
        }
        datasets = {
            d.id: (
                d.name,
                d.title,
                d.organization,
                tuple(d.tags),
                d.modified_at,
                d.views,
                d.removed_at,
            )
            for d in session.execute(select(Dataset)).scalars()
        }
    return {"assets": assets, "datasets": datasets}  # type: ignore[dict-item]


def expected_assets(packages: list[dict]) -> dict[str, tuple[Any, ...]]:
    """What the mapping says the packages hold (one asset per URL, the last listing wins)."""
    ordered = sorted(packages, key=lambda p: (solr_time(p["metadata_modified"]), p["id"]))
    mapped = map_packages(ordered)
    return {a.id: (a.url, a.size_mb, a.dataset_id) for a in mapped.assets}


def test_a_clean_harvest_stores_every_dataset_and_usable_resource(context, portal, database):
    outcome = run(context, portal)

    packages = list(portal.datasets.values())
    got = catalog(database)
    assert outcome["state"] == OK and outcome["datasets"] == len(packages)
    assert set(got["datasets"]) == {p["id"] for p in packages}
    wanted = expected_assets(packages)
    assert {k: (v[0], v[3], v[4]) for k, v in got["assets"].items()} == wanted
    assert outcome["assets_created"] == len(wanted)
    # Every resource is accounted for: an asset written (created, or updated when an earlier
    # page listed its URL), a URL another resource of its page listed, or skipped.
    resources = sum(len(p.get("resources") or []) for p in packages)
    skipped = outcome["skipped_resources"]
    written = outcome["assets_created"] + outcome["assets_updated"]
    assert written + outcome["shared_urls"] + sum(skipped.values()) == resources
    assert {"no URL", "mailto: URL", "relative URL"} <= set(skipped), skipped
    # Junk sizes are unknown, never zero.
    assert all(v[3] is None or v[3] > 0 for v in got["assets"].values())
    assert any(v[3] is None for v in got["assets"].values())
    assert outcome["expected"] == len(packages) and outcome["pages"] >= len(packages) // ROWS


def test_an_interrupted_harvest_rerun_ends_with_exactly_the_clean_runs_catalog(
    context, portal, database, db_url, tmp_path, clock
):
    # The portal fails every try of the fourth request: the run stops there.
    calls = {"n": 0}

    def fail_fourth(_params: dict) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            portal.fail_next(3, status=503)

    portal.on_search = fail_fourth
    with pytest.raises(CkanError, match="503"):
        run(context, portal)
    with database.read() as session:
        stopped = service.recent_runs(session, limit=1)[0]
    assert stopped["state"] == INTERRUPTED and stopped["pages"] == 3
    assert "503" in stopped["error"] and "failed 3 times" in stopped["error"]
    assert stopped["retries"] == 2  # the failing request's: tried 3 times, so twice again
    half = catalog(database)
    assert 0 < len(half["datasets"]) < len(portal.datasets)

    portal.on_search = None
    requests_before = len(portal.searches())
    outcome = run(context, portal)
    assert outcome["id"] == stopped["id"] and outcome["state"] == OK
    # It went on from its cursor: the first request of the rerun asked past what was stored.
    resumed = portal.searches()[requests_before]
    assert "metadata_modified:[" in resumed.get("fq", ""), resumed

    # A clean run of the same portal into a fresh database gives exactly the same catalog.
    from priorizer.startup import prepare
    from tests.conftest import make_settings

    if db_url.startswith("sqlite"):
        fresh_url = f"sqlite:///{tmp_path / 'clean.sqlite3'}"
    else:
        pytest.skip("compared on SQLite; PostgreSQL runs the same code")
    settings = make_settings(fresh_url, tmp_path / "clean")
    prepare(settings, now=clock())
    clean_db = Database(settings.sqlalchemy_url)
    try:
        clean_context = service.Context(
            database=clean_db, policy=context.policy, queue=QUEUE, clock=clock
        )
        run(clean_context, portal)
        assert catalog(database) == catalog(clean_db)
    finally:
        clean_db.dispose()


def test_ctrl_c_mid_harvest_loses_nothing_and_the_rerun_continues(context, portal, database):
    pages = {"n": 0}

    def interrupt(view: dict) -> None:
        pages["n"] += 1
        if pages["n"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(context, portal, on_page=interrupt)
    with database.read() as session:
        stopped = service.recent_runs(session, limit=1)[0]
    assert stopped["state"] == INTERRUPTED and stopped["pages"] == 2
    assert stopped["error"] == "interrupted"
    stored = catalog(database)["datasets"]
    assert len(stored) == stopped["datasets"]  # both pages committed, nothing half-written

    outcome = run(context, portal)
    assert outcome["state"] == OK and set(catalog(database)["datasets"]) == set(portal.datasets)


def test_500s_timeouts_and_garbled_pages_are_retried(context, portal, database):
    calls = {"n": 0}

    def trouble(_params: dict) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            portal.fail_next(2, status=500)
        elif calls["n"] == 5:
            portal.stall_next(1, seconds=2.0)
        elif calls["n"] == 8:
            portal.garble_next(1)

    portal.on_search = trouble
    outcome = run(context, portal, client={"timeout_seconds": 0.5, "attempts": 4})
    assert outcome["state"] == OK and outcome["retries"] >= 4, outcome
    assert set(catalog(database)["datasets"]) == set(portal.datasets)


def test_a_request_refused_after_retries_counts_them_on_the_stopped_run(context, portal, database):
    calls = {"n": 0}

    def trouble(_params: dict) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            portal.fail_next(1, status=502)  # this page's one retry
        elif calls["n"] == 3:
            portal.fail_next(1, status=503)
            portal.fail_next(1, status=403)  # then refused: not tried again

    portal.on_search = trouble
    with pytest.raises(CkanError, match="403"):
        run(context, portal)
    with database.read() as session:
        stopped = service.recent_runs(session, limit=1)[0]
    assert stopped["state"] == INTERRUPTED and "403" in stopped["error"], stopped
    assert stopped["retries"] == 2, stopped


def test_datasets_added_while_harvesting_are_harvested_too(context, portal, database, clock):
    added: list[str] = []

    def add_some(_params: dict) -> None:
        if len(portal.searches()) == 3 and not added:
            fresh = [
                package(
                    f"late-{i}",
                    title="Ocean buoys ✨ 2026",
                    modified="2026-01-15T11:00:00",
                    resources=[resource(f"https://late.example.org/{i}.nc", size=2048)],
                )
                for i in range(5)
            ]
            portal.datasets.update({p["id"]: p for p in fresh})
            added.extend(p["id"] for p in fresh)

    portal.on_search = add_some
    outcome = run(context, portal)
    assert added and outcome["state"] == OK
    assert set(added) <= set(catalog(database)["datasets"])
    assert set(catalog(database)["datasets"]) == set(portal.datasets)


def test_vanished_datasets_are_kept_marked_removed_and_rise_in_priority(
    context, portal, database, clock
):
    run(context, portal)
    gone = sorted(portal.datasets)[:10]
    with database.read() as session:
        before = {
            a.id: a.base_priority
            for a in session.execute(select(Asset).where(Asset.dataset_id.in_(gone))).scalars()
        }
    assert before, "the vanishing datasets should have assets"

    clock.advance(days=1)
    for dataset_id in gone:
        portal.remove(dataset_id)
    # An asset whose URL a remaining dataset lists too now belongs to that one: not removed.
    still_listed = {a.id for a in map_packages(list(portal.datasets.values())).assets}
    before = {k: v for k, v in before.items() if k not in still_listed}
    assert before
    outcome = run(context, portal)

    assert outcome["removed_upstream"] == len(gone)
    got = catalog(database)
    assert all(got["datasets"][d][6] == clock() for d in gone)  # kept, marked removed
    assert sum(1 for d in got["datasets"].values() if d[6] is not None) == len(gone)
    with database.read() as session:
        after = {
            a.id: a.base_priority
            for a in session.execute(select(Asset).where(Asset.id.in_(before))).scalars()
        }
    assert set(after) == set(before)  # no asset deleted
    removed_points = context.policy.removed_upstream.points
    assert removed_points > 0
    assert all(after[k] >= before[k] for k in before)
    assert any(after[k] > before[k] for k in before)  # 10 is the ceiling for the rest
    assert all(after[k] == 10 or after[k] > before[k] for k in before)

    # They come back: no longer removed, priorities as before.
    clock.advance(days=1)
    portal.add(
        *[
            hostile_catalog(300, seed=7)[i]
            for i in range(300)
            if hostile_catalog(300, seed=7)[i]["id"] in gone
        ]
    )
    back = run(context, portal)
    assert back["returned_upstream"] == len(gone) and back["removed_upstream"] == 0
    with database.read() as session:
        again = {
            a.id: a.base_priority
            for a in session.execute(select(Asset).where(Asset.id.in_(before))).scalars()
        }
    assert again == before


def test_incremental_harvests_ask_only_for_changes_and_mark_nothing_removed(
    context, portal, database, clock
):
    first = run(context, portal)
    newest = first["id"]
    portal.remove(sorted(portal.datasets)[0])
    portal.add(
        package(
            "brand-new",
            modified="2026-01-10T00:00:00",
            resources=[resource("https://new.example.org/a.csv", size=10)],
        )
    )
    asked_before = len(portal.searches())
    outcome = run(context, portal, incremental=True)
    assert outcome["id"] != newest and outcome["removed_upstream"] is None
    assert outcome["since"] is not None
    first_request = portal.searches()[asked_before]
    assert "metadata_modified:[" in first_request["fq"]
    assert outcome["datasets"] < 20  # the changes, not the whole portal again
    assert "brand-new" in catalog(database)["datasets"]


def test_organization_and_query_scope_the_harvest(context, database):
    packages = [
        package(
            "a",
            organization="noaa-gov",
            title="Ocean heat",
            resources=[resource("https://x.org/a.csv")],
        ),
        package(
            "b",
            organization="nasa-gov",
            title="Ocean color",
            resources=[resource("https://x.org/b.csv")],
        ),
        package(
            "c",
            organization="noaa-gov",
            title="Fisheries",
            resources=[resource("https://x.org/c.csv")],
        ),
    ]
    with CkanPortal(packages) as portal:
        run(
            context,
            portal,
            source=service.Source(portal.base_url, organization="noaa-gov", query="ocean"),
        )
    assert set(catalog(database)["datasets"]) == {"a"}


def test_people_s_priorities_and_reported_sizes_survive_harvests_and_rescoring(
    context, portal, database, clock
):
    run(context, portal)
    with database.read() as session:
        asset = session.execute(
            select(Asset).where(Asset.size_mb.is_(None)).order_by(Asset.id).limit(1)
        ).scalar_one()
        other = session.execute(
            select(Asset).where(Asset.id != asset.id).order_by(Asset.id).limit(1)
        ).scalar_one()
    manual = 1 if other.base_priority != 1 else 2
    with database.write() as session:
        catalog_service.update_priorities(
            session, updates=[(other.id, manual)], queue=QUEUE, now=clock()
        )
        row = session.get(Asset, asset.id)
        row.size_mb = row.budget_mb = 321.0  # as a node's /complete reports it

    clock.advance(days=1)
    run(context, portal)
    rescore(database, policy=context.policy, queue=QUEUE, now=clock())
    with database.read() as session:
        assert session.get(Asset, other.id).base_priority == manual
        assert session.get(Asset, other.id).manual_priority == manual
        assert session.get(Asset, asset.id).size_mb == 321.0


def test_one_harvest_of_a_source_at_a_time(context, portal, database):
    source = service.Source(portal.base_url)
    with database.exclusive(service.LOCK_NAME, key=service.lock_key(source.key)) as held:
        assert held
        with pytest.raises(Conflict, match="running already"):
            run(context, portal)


def test_the_keyset_cursor_passes_ties_larger_than_a_page():
    tie = "2020-06-01T12:00:00.482910"
    results = [{"id": f"d{i}", "metadata_modified": tie} for i in range(5)]
    cursor, skip = reader.next_cursor(None, 0, results)
    assert (cursor, skip) == ("2020-06-01T12:00:00.482Z", 5)
    cursor, skip = reader.next_cursor(cursor, skip, results)
    assert skip == 10
    later = [*results[:2], {"id": "z", "metadata_modified": "2021-01-01T00:00:00"}]
    assert reader.next_cursor(cursor, skip, later) == ("2021-01-01T00:00:00.000Z", 1)
    assert reader.to_millis(datetime(2020, 1, 1, tzinfo=UTC)) == "2020-01-01T00:00:00.000Z"
