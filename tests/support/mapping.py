"""Helpers shared by the CKAN mapping tests (tests/unit/test_mapping_*.py)."""

from __future__ import annotations

from typing import Any

MB = 1024 * 1024


def accounted(mapped: Any) -> int:
    return len(mapped.assets) + mapped.shared_urls + sum(mapped.skipped.values())
