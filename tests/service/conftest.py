"""Fixtures shared by the seed JSON tests (tests/service/test_seed_json_*.py) and the
maintenance tests (tests/service/test_maintenance_*.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.maintenance import Env
from tests.support.seed_json import ALLOCATION_RECORDS, CKAN_ROWS, write_json


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    return (
        write_json(tmp_path / "in" / "ckan_data.json", CKAN_ROWS),
        write_json(tmp_path / "in" / "allocations.json", ALLOCATION_RECORDS),
    )


@pytest.fixture
def no_background_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """Maintenance pauses between its SQLite transactions to let requests write
    (`Database.background_write`); no request waits in these tests, so no test sleeps.
    The maintenance test modules use it for every test (`pytestmark`)."""
    monkeypatch.setattr("priorizer.db.database.BACKGROUND_PAUSE_MAX_SECONDS", 0.0)


@pytest.fixture
def env(start_service, clock) -> Callable[..., Env]:
    """Build the service with non-default settings: `env(replication_target=1, ...)`."""
    return lambda **overrides: Env(*start_service(**overrides), clock)
