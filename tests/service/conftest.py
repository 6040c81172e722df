"""Fixtures shared by the seed JSON tests (tests/service/test_seed_json_*.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.seed_json import ALLOCATION_RECORDS, CKAN_ROWS, write_json


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    return (
        write_json(tmp_path / "in" / "ckan_data.json", CKAN_ROWS),
        write_json(tmp_path / "in" / "allocations.json", ALLOCATION_RECORDS),
    )
