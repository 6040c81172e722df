"""The settings that bound what nodes may do (issue 11): read from their variables, checked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from priorizer.config import Settings


def test_defaults():
    settings = Settings()

    assert (settings.failed_retry_hours, settings.failed_retry_seconds) == (72, 72 * 3600)
    assert settings.size_tolerance == 0.05
    assert settings.max_free_space_gb == 1_000_000
    assert settings.unproven_leases_per_address is None
    assert settings.unproven_address_cap == settings.lease_cap_initial == 200


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        ("FAILED_RETRY_HOURS", "0.5", "failed_retry_hours", 0.5),
        ("FAILED_RETRY_HOURS", "0", "failed_retry_hours", 0.0),
        ("SIZE_TOLERANCE", "0.2", "size_tolerance", 0.2),
        ("MAX_FREE_SPACE_GB", "50000", "max_free_space_gb", 50_000.0),
        ("UNPROVEN_LEASES_PER_ADDRESS", "40", "unproven_address_cap", 40),
        ("UNPROVEN_LEASES_PER_ADDRESS", "0", "unproven_address_cap", 0),
        ("LEASE_CAP_INITIAL", "30", "unproven_address_cap", 30),
    ],
)
def test_reads_environment_variable(monkeypatch, name, value, attribute, expected):
    monkeypatch.setenv(name, value)

    assert getattr(Settings(), attribute) == expected


def test_with_node_auth_no_per_address_cap(monkeypatch):
    monkeypatch.setenv("NODE_AUTH", "true")
    monkeypatch.setenv("UNPROVEN_LEASES_PER_ADDRESS", "40")

    assert Settings().unproven_address_cap == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FAILED_RETRY_HOURS", "-1"),
        ("SIZE_TOLERANCE", "-0.1"),
        ("SIZE_TOLERANCE", "nan"),
        ("MAX_FREE_SPACE_GB", "0"),
        ("MAX_FREE_SPACE_GB", "1e8"),
        ("UNPROVEN_LEASES_PER_ADDRESS", "-5"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError) as raised:
        Settings()

    assert name in str(raised.value)
