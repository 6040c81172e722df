"""What nodes report, weighed: pure rules, no I/O. Documented in docs/maintenance.md.

- Failure reason codes say whose fault a failure is. Asset-side ones (the origin or the file)
  count toward the asset's FAILURE_THRESHOLD; node-side ones never do. A failure reported
  without a code is `unspecified`, and counts like an asset-side one (old clients).
- Only `node_error` costs the node standing (`node.standing.after_failure`): an honest node
  whose files are dead, or whose disk is full, is not at fault.
- Each completed copy agrees or is disputed (`settle`); disputed copies do not count toward the
  replication target, so a further node gets the asset and its copy settles the question.
- Reports from nodes with no record weigh a third (`threshold_reached`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# The origin or the file is at fault.
ASSET_SIDE_CODES = (
    "http_404",
    "http_410",
    "http_error",  # another HTTP error, after retries
    "connection",  # the origin unreachable, after retries
    "not_a_file",  # an HTML page or a listing where a file was expected
    "too_large",  # bigger than the size it was given, beyond the margin
    "size_mismatch",
    "checksum_mismatch",
)
# The node is: the asset is not to blame.
NODE_SIDE_CODES = ("disk_full", "shutting_down", "node_error")
UNSPECIFIED = "unspecified"
FAILURE_CODES = (*ASSET_SIDE_CODES, *NODE_SIDE_CODES, UNSPECIFIED)

FailureCode = Literal[
    "http_404",
    "http_410",
    "http_error",
    "connection",
    "not_a_file",
    "too_large",
    "size_mismatch",
    "checksum_mismatch",
    "disk_full",
    "shutting_down",
    "node_error",
    "unspecified",
]
assert FailureCode.__args__ == FAILURE_CODES  # type: ignore[attr-defined]


def failure_code(code: str | None) -> str:
    """The code a failure is recorded with: the one given, or `unspecified`."""
    return code or UNSPECIFIED


def counts_against_asset(code: str) -> bool:
    """Whether a failure with this code counts toward the asset's failure threshold."""
    return code not in NODE_SIDE_CODES


def costs_node_standing(code: str) -> bool:
    """Whether a failure with this code takes from the node's lease cap."""
    return code == "node_error"


# --- Copies: agreeing or disputed -----------------------------------------------------------

DISPUTE_SIZE = "size"  # its size contradicts the asset's known size
DISPUTE_CHECKSUM = "checksum"  # its checksum is not the settled one
# Slack below which sizes never contradict: catalogs round them to about a kilobyte.
SIZE_SLACK_MB = 1 / 1024


@dataclass(frozen=True, slots=True)
class CopyReport:
    """A completed copy as its node reported it, in the order reported."""

    id: int
    checksum_sha256: str | None
    size_mb: float | None


@dataclass(frozen=True, slots=True)
class Verdict:
    checksum_sha256: str | None  # the settled checksum
    disputes: dict[int, str | None]  # copy id -> why it is disputed, or None
    size_mb: float | None  # what the settled copies report, when one says


def size_contradicts(reported_mb: float, known_mb: float, tolerance: float) -> bool:
    """Whether a reported size is off a known one by more than the tolerance (a share)."""
    return abs(reported_mb - known_mb) > max(tolerance * known_mb, SIZE_SLACK_MB)


def settle(
    copies: Sequence[CopyReport], *, known_size_mb: float | None, tolerance: float
) -> Verdict:
    """Which copies agree. A copy whose size contradicts the known size is disputed; of the
    others, the checksum most of them report is settled (ties: the first reported), and a copy
    reporting another is disputed. A copy that reported no checksum agrees."""
    known = known_size_mb or None  # 0 is a catalog's way of not knowing
    disputes = {copy.id: _size_dispute(copy, known, tolerance) for copy in copies}
    agreeing = [copy for copy in copies if disputes[copy.id] is None]
    votes = Counter(copy.checksum_sha256 for copy in agreeing if copy.checksum_sha256)
    # A Counter keeps first-seen order, and max() the first of equals: ties go to the first.
    settled = max(votes, key=votes.__getitem__) if votes else None
    for copy in agreeing:
        if copy.checksum_sha256 not in (None, settled):
            disputes[copy.id] = DISPUTE_CHECKSUM
    sizes = [c.size_mb for c in agreeing if disputes[c.id] is None and c.size_mb is not None]
    return Verdict(settled, disputes, sizes[0] if sizes else None)


def _size_dispute(copy: CopyReport, known_mb: float | None, tolerance: float) -> str | None:
    if known_mb is None or copy.size_mb is None:
        return None
    return DISPUTE_SIZE if size_contradicts(copy.size_mb, known_mb, tolerance) else None


# --- Reporters: how much a node's word weighs -----------------------------------------------

# A node is proven once it has completed a copy of another asset. Reports from unproven nodes
# (failures, disputed copies) weigh a third each: three made-up node ids weigh as much as one
# node with a record.
UNPROVEN_PER_PROVEN = 3


def threshold_reached(*, proven: int, unproven: int, threshold: int) -> bool:
    """Whether reports from `proven` and `unproven` distinct nodes reach `threshold`."""
    return proven * UNPROVEN_PER_PROVEN + unproven >= threshold * UNPROVEN_PER_PROVEN


def weight(*, proven: int, unproven: int) -> float:
    """What those reports weigh, in proven nodes' reports (shown to people)."""
    return round(proven + unproven / UNPROVEN_PER_PROVEN, 2)
