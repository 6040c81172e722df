"""What CLI commands do to a database a server may be serving (startup.open_for_command)."""

from __future__ import annotations

from sqlalchemy import select

from priorizer.catalog.models import Asset
from priorizer.startup import import_files, open_for_command
from tests.conftest import make_settings
from tests.support.factories import add_assets, asset, table_snapshot


def test_a_command_keeps_the_queue_policy_the_catalog_was_ranked_with(
    database, settings, clock, db_url, tmp_path
):
    add_assets(database, settings, [asset(1, priority=9)], clock())
    before = table_snapshot(database)
    other = make_settings(db_url, tmp_path, replication_target=3, copy_penalty=1)

    command_db, queue = open_for_command(other, now=clock())
    command_db.dispose()

    assert (queue.replication_target, queue.copy_penalty) == (2, 3.0)
    assert table_snapshot(database) == before  # no re-ranking behind the server's back


def test_a_command_does_not_run_the_first_start_import(db_url, tmp_path, clock):
    settings = make_settings(db_url, tmp_path)
    stale = settings.data_directory / settings.ckan_data_file
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text('[{"id": "stale", "url": "https://x.org/s"}]')
    wanted = tmp_path / "wanted.json"
    wanted.write_text('[{"id": "wanted", "url": "https://x.org/w"}]')

    database, queue = open_for_command(settings, now=clock())
    try:
        report = import_files(database, settings, wanted, None, now=clock(), queue=queue)
        with database.read() as session:
            ids = session.execute(select(Asset.id)).scalars().all()
    finally:
        database.dispose()

    assert report.assets_created == 1
    assert ids == ["wanted"]
