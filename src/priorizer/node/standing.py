"""A node's standing: how many leases it may hold open at once (after BOINC's host reliability).

Pure functions, no I/O. The rules (docs/maintenance.md):
- A node starts with `initial` (LEASE_CAP_INITIAL, default 200) open leases at most.
- The cap doubles, up to `maximum` (LEASE_CAP_MAX), whenever the node's run of consecutive
  successful completions reaches half the cap: a node proves itself in proportion to what it is
  trusted with (200 -> 400 after 100 completions in a row, -> 800 after 200, ...).
- A maintenance cycle that finds some of its leases expired halves the cap, once per cycle,
  down to `minimum` (LEASE_CAP_MIN), and ends the run: hoarding stops paying at once.
- A failure the node reports as its own fault (reason code `node_error`) takes a tenth off
  the cap and ends the run. Other failures (a dead link, a full disk: see
  `allocation.evidence`) change nothing: an honest node is not punished for dead files.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CapLimits:
    initial: int
    minimum: int
    maximum: int

    def clamp(self, cap: int | None) -> int:
        """The cap in force: the stored one (or the initial one) within the current limits."""
        return max(self.minimum, min(self.maximum, self.initial if cap is None else cap))


@dataclass(frozen=True, slots=True)
class Standing:
    cap: int | None  # None: never changed, the initial cap applies
    run: int  # consecutive successes


def after_completion(standing: Standing, limits: CapLimits) -> Standing:
    run = standing.run + 1
    cap = limits.clamp(standing.cap)
    return Standing(min(limits.maximum, cap * 2) if 2 * run >= cap else cap, run)


def after_failure(standing: Standing, limits: CapLimits) -> Standing:
    cap = limits.clamp(standing.cap)
    return Standing(max(limits.minimum, cap - max(1, cap // 10)), 0)


def after_expirations(standing: Standing, limits: CapLimits) -> Standing:
    return Standing(max(limits.minimum, limits.clamp(standing.cap) // 2), 0)
