"""Fixtures of the allocation rules tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.allocation_rules import Service


@pytest.fixture
def service(start_service, clock) -> Callable[..., Service]:
    """Build the service with non-default settings: `service(copy_penalty=0, ...)`."""
    return lambda **overrides: Service(*start_service(**overrides))
