"""The node endpoints' rate limits in memory: limits hold, and housekeeping stays cheap."""

from __future__ import annotations

import time

import pytest

from priorizer.errors import TooManyRequests
from priorizer.web import limits as web_limits
from priorizer.web.limits import RateLimits


def test_a_limit_holds_and_frees_up_with_its_window() -> None:
    limits = RateLimits(per_node="3/second", per_address="1000/second")
    for _ in range(3):
        limits.check(address="10.0.0.1", node_key="n1")
    with pytest.raises(TooManyRequests) as refused:
        limits.check(address="10.0.0.1", node_key="n1")
    assert refused.value.retry_after >= 1
    limits.check(address="10.0.0.1", node_key="n2")  # another node is not held back
    time.sleep(1.1)
    limits.check(address="10.0.0.1", node_key="n1")


def test_housekeeping_runs_at_most_once_per_interval_however_many_keys() -> None:
    limits = RateLimits(per_node="10/minute", per_address="100000/minute")
    for i in range(5_000):
        limits.check(address="10.0.0.1", node_key=f"node-{i}")
    # The library would walk all 5,000 keys a hundred times a second.
    assert limits.storage.housekeeping_runs == 1


def test_windows_gone_by_are_dropped_from_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_limits, "HOUSEKEEPING_SECONDS", 0.05)
    limits = RateLimits(per_node="1/second", per_address="1000/second")
    limits.check(address="10.0.0.1", node_key="old")
    events = limits.storage.events
    (old,) = (key for key in events if "old" in key)
    assert len(events[old]) == 1
    time.sleep(1.2)
    limits.check(address="10.0.0.2", node_key="new")
    deadline = time.monotonic() + 5
    while events[old] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert events[old] == []  # the entries of the window gone by are dropped
    assert [len(events[key]) for key in events if "new" in key] == [1]
