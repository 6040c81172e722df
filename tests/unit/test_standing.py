"""Node standing rules (node/standing.py): the open-lease cap grows with proven reliability and
shrinks with expirations and failures, always within its bounds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from priorizer.node.standing import (
    CapLimits,
    Standing,
    after_completion,
    after_expirations,
    after_failure,
)

LIMITS = CapLimits(initial=200, minimum=10, maximum=10_000)


def test_a_new_node_starts_at_the_initial_cap():
    assert LIMITS.clamp(None) == 200


def test_the_cap_doubles_when_the_run_reaches_half_of_it():
    standing = Standing(None, 0)
    caps = []
    for _ in range(400):
        standing = after_completion(standing, LIMITS)
        caps.append(standing.cap)
    # 100 completions in a row earn 400, 200 earn 800, 400 earn 1600.
    assert caps[98] == 200 and caps[99] == 400
    assert caps[198] == 400 and caps[199] == 800
    assert caps[399] == 1600
    assert standing.run == 400


def test_the_cap_never_passes_its_ceiling():
    standing = Standing(9_000, 10_000)
    assert after_completion(standing, LIMITS).cap == 10_000


def test_expirations_halve_the_cap_and_end_the_run():
    assert after_expirations(Standing(800, 50), LIMITS) == Standing(400, 0)
    assert after_expirations(Standing(None, 3), LIMITS) == Standing(100, 0)
    assert after_expirations(Standing(15, 0), LIMITS) == Standing(10, 0)  # the floor


def test_a_failure_takes_a_tenth_and_ends_the_run():
    assert after_failure(Standing(200, 7), LIMITS) == Standing(180, 0)
    assert after_failure(Standing(11, 7), LIMITS) == Standing(10, 0)
    assert after_failure(Standing(10, 7), LIMITS) == Standing(10, 0)


def test_stored_caps_outside_new_limits_are_clamped():
    narrower = CapLimits(initial=50, minimum=20, maximum=100)
    assert narrower.clamp(5_000) == 100
    assert narrower.clamp(3) == 20


events = st.lists(st.sampled_from(["complete", "fail", "expire"]), max_size=300)


@given(events)
def test_the_cap_stays_within_bounds_whatever_happens(sequence):
    standing = Standing(None, 0)
    rules = {"complete": after_completion, "fail": after_failure, "expire": after_expirations}
    for event in sequence:
        before = LIMITS.clamp(standing.cap)
        standing = rules[event](standing, LIMITS)
        assert standing.cap is not None
        assert LIMITS.minimum <= standing.cap <= LIMITS.maximum
        if event == "complete":
            assert standing.cap >= before
        else:
            assert standing.cap <= before and standing.run == 0
