"""Fixtures of the lease lifecycle tests (tests/api/test_lifecycle_*.py). Modules of this folder
that define an `api` or `service` fixture of their own use theirs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.api import Api
from tests.support.factories import asset


@pytest.fixture
def api(client, database, settings, clock) -> Api:
    """The service with the default settings (REPLICATION_TARGET 2, FAILURE_THRESHOLD 3...)."""
    return Api(client, database, settings, clock, cycles_on_app_database=True)


@pytest.fixture
def service(start_service, clock) -> Callable[..., Api]:
    """Build the service with non-default settings: `service(replication_target=1, ...)`."""
    return lambda **overrides: Api(*start_service(**overrides), clock, cycles_on_app_database=True)


@pytest.fixture
def node_a_holds_asset_1(api) -> Api:
    """node-a holds an open lease on asset-1 only; asset-2 (too big for it) is unleased."""
    api.add(asset(1, size_mb=100), asset(2, size_mb=5000))
    assert api.allocate("node-a", 1) == ["asset-1"]
    return api
