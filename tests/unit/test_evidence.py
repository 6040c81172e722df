"""The rules that weigh what nodes report (allocation/evidence.py): whose fault a failure is,
which copies agree, and how much a node's word counts."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from priorizer.allocation.evidence import (
    ASSET_SIDE_CODES,
    NODE_SIDE_CODES,
    CopyReport,
    costs_node_standing,
    counts_against_asset,
    failure_code,
    settle,
    size_contradicts,
    threshold_reached,
)


def copies(*reports: tuple[str | None, float | None]) -> list[CopyReport]:
    return [CopyReport(n, checksum, size) for n, (checksum, size) in enumerate(reports, 1)]


def test_whose_fault_each_code_says():
    assert all(counts_against_asset(code) for code in ASSET_SIDE_CODES)
    assert not any(counts_against_asset(code) for code in NODE_SIDE_CODES)
    assert counts_against_asset(failure_code(None))  # unspecified: as old clients meant it
    assert [
        code for code in (*ASSET_SIDE_CODES, *NODE_SIDE_CODES) if costs_node_standing(code)
    ] == ["node_error"]


def test_the_majority_checksum_is_settled_and_the_others_disputed():
    verdict = settle(copies(("a", None), ("b", None), ("b", None)), known_size_mb=None, tolerance=0)

    assert verdict.checksum_sha256 == "b"
    assert verdict.disputes == {1: "checksum", 2: None, 3: None}


def test_a_tie_goes_to_the_first_reported():
    verdict = settle(copies(("b", None), ("a", None)), known_size_mb=None, tolerance=0)

    assert (verdict.checksum_sha256, verdict.disputes) == ("b", {1: None, 2: "checksum"})


def test_a_copy_of_the_wrong_size_has_no_vote():
    reports = copies(("junk", 0.0001), ("junk", 0.0001), ("real", 2.0))

    verdict = settle(reports, known_size_mb=2.0, tolerance=0.05)

    assert verdict.checksum_sha256 == "real"
    assert verdict.disputes == {1: "size", 2: "size", 3: None}


def test_an_unknown_or_zero_known_size_disputes_nothing_and_the_agreeing_size_is_given():
    for known in (None, 0.0):
        verdict = settle(
            copies(("a", 7.0), ("b", 9.0), ("a", 7.0)), known_size_mb=known, tolerance=0
        )
        assert verdict.disputes == {1: None, 2: "checksum", 3: None}
        assert verdict.size_mb == 7.0


def test_size_tolerance_is_a_share_with_a_kilobyte_of_slack():
    assert not size_contradicts(2.09, 2.0, 0.05)
    assert size_contradicts(2.11, 2.0, 0.05)
    assert not size_contradicts(0.0015, 0.001, 0.0)  # half a kilobyte off: rounding
    assert size_contradicts(0.003, 0.001, 0.0)


def test_unproven_reporters_weigh_a_third():
    assert threshold_reached(proven=3, unproven=0, threshold=3)
    assert not threshold_reached(proven=0, unproven=8, threshold=3)
    assert threshold_reached(proven=0, unproven=9, threshold=3)
    assert threshold_reached(proven=2, unproven=3, threshold=3)
    assert not threshold_reached(proven=0, unproven=3, threshold=3)


reports = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", None]), st.sampled_from([None, 1.0, 2.0, 50.0])),
    max_size=12,
)


@given(reports, st.sampled_from([None, 2.0]))
def test_settled_copies_outnumber_every_other_checksum(reports, known):
    verdict = settle(copies(*reports), known_size_mb=known, tolerance=0.05)

    agreeing = [c for c in copies(*reports) if verdict.disputes[c.id] is None]
    votes = Counter(c.checksum_sha256 for c in agreeing if c.checksum_sha256)
    assert set(votes) <= {verdict.checksum_sha256}
    sized = [c for c in copies(*reports) if verdict.disputes[c.id] != "size" and c.checksum_sha256]
    everyone = Counter(c.checksum_sha256 for c in sized)
    if everyone:
        assert everyone[verdict.checksum_sha256] == max(everyone.values())
    # A copy that reported no checksum is only ever disputed for its size.
    assert all(
        verdict.disputes[c.id] in (None, "size") for c in copies(*reports) if not c.checksum_sha256
    )
