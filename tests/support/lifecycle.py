"""Values and helpers shared by the lease lifecycle tests (tests/api/test_lifecycle_*.py)."""

from __future__ import annotations

from datetime import datetime

SUM_A = "a" * 64
SUM_B = "b" * 64
MAGNET = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=file-1.zip"


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
