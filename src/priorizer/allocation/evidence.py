"""What nodes report, weighed: pure rules, no I/O. Documented in docs/maintenance.md.

- Failure reason codes say whose fault a failure is. Asset-side ones (the origin or the file)
  count toward the asset's FAILURE_THRESHOLD; node-side ones never do. A failure reported
  without a code is `unspecified`, and counts like an asset-side one (old clients).
- Only `node_error` costs the node standing (`node.standing.after_failure`): an honest node
  whose files are dead, or whose disk is full, is not at fault.
"""

from __future__ import annotations

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
