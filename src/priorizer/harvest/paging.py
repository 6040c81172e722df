"""How a harvest pages through `package_search`, and how it notices a portal that does not
play along: pure rules, no I/O.

The harvest starts with the keyset cursor (`service`: sorted by modification, filtered from the
last instant seen). Some CKAN-compatible APIs and proxies ignore `fq` or `sort`: the cursor then
never gets anywhere and the same datasets come back for ever. The pager watches every page for
the signs (a page out of order, datasets modified before the cursor, the same datasets again,
a cursor that does not move, a `count` that does not shrink as the cursor moves) and, at the
first one, falls back to plain offsets (`start`), de-duplicating by id, until an empty page,
bounded by the largest `count` seen plus a margin. Whatever the mode, a harvest that gets
nothing new for `STALL_PAGES` pages in a row stops with `Stalled`, keeping what it stored.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

KEYSET = "keyset"
OFFSET = "offset"
STALL_PAGES = 5
# Offset paging stops at the portal's count plus this share of it (at least a page): a portal
# that keeps sending new ids past its own count is not trusted further.
MARGIN_SHARE = 0.1


class Stalled(Exception):
    """No new dataset for `STALL_PAGES` pages in a row: the portal cannot be paged."""


@dataclass(frozen=True, slots=True)
class Listed:
    """What one page listed: each package's id and modification (to the millisecond, as the
    portal compares them), in the portal's order; its `count`; where the keyset would go next."""

    entries: tuple[tuple[str, str | None], ...]
    count: int | None
    next_cursor: str | None
    next_skip: int
    results: int  # packages in the page, with an id or not


@dataclass(frozen=True, slots=True)
class Step:
    """What to do with a page and where to go next."""

    keep: frozenset[str]  # ids of the page worth storing (new, or modified since seen)
    done: bool  # the listing is over: do not ask for another page
    cursor: str | None = None
    skip: int = 0


@dataclass(slots=True)
class Pager:
    rows: int
    mode: str = KEYSET
    cursor: str | None = None
    skip: int = 0  # keyset: taken at `cursor` already; offset: the next `start`
    note: str | None = None
    complete: bool = False  # the listing reached its end (not a bound nor a stall)
    stall_pages: int = STALL_PAGES
    _seen: dict[str, str | None] = field(default_factory=dict)
    _first_count: int | None = None
    _largest_count: int = 0
    _pages: int = 0
    _idle: int = 0

    def advance(self, listed: Listed) -> Step:
        """Take in the page asked for at (`cursor`, `skip`); raises `Stalled`."""
        self._pages += 1
        if listed.results == 0:
            self.complete = True
            return Step(frozenset(), done=True)
        keep = frozenset(
            i for i, modified in listed.entries if i not in self._seen or self._seen[i] != modified
        )
        self._idle = 0 if keep else self._idle + 1
        if self._idle >= self.stall_pages:
            raise Stalled(
                f"no new dataset in {self._idle} pages in a row ({self.mode} paging at "
                f"{self._where()}): the portal cannot be paged; what was stored is kept"
            )
        if self.mode == KEYSET:
            problem = self._misbehaviour(listed, keep)
            if problem is None:
                self._remember(listed)
                self.cursor, self.skip = listed.next_cursor, listed.next_skip
                return Step(keep, done=False, cursor=self.cursor, skip=self.skip)
            self.mode, self.note = OFFSET, f"{problem}: fell back to offset paging"
            self.cursor, self.skip = None, 0
            self._remember(listed)
            return Step(keep, done=False, cursor=None, skip=0)
        return self._offset_step(listed, keep)

    def _offset_step(self, listed: Listed, keep: frozenset[str]) -> Step:
        self._remember(listed)
        self.skip += listed.results
        if listed.count is not None:
            self._largest_count = max(self._largest_count, listed.count)
        if self._largest_count and self.skip >= self._bound():
            # Past the count and its margin, and still sending: the listing may not be whole
            # (a count that lags): what it did not send is not taken as removed.
            self.note = (self.note or "") + (
                f"; stopped at offset {self.skip}, past the portal's count "
                f"{self._largest_count} and its margin"
            )
            return Step(keep, done=True)
        return Step(keep, done=False, cursor=None, skip=self.skip)

    def _bound(self) -> int:
        return self._largest_count + max(self.rows, int(self._largest_count * MARGIN_SHARE))

    def _misbehaviour(self, listed: Listed, keep: frozenset[str]) -> str | None:
        dated = [(modified, i) for i, modified in listed.entries if modified is not None]
        if any(a > b for a, b in itertools.pairwise(dated)):
            return f"the portal ignores the sort (page {self._pages} came out of order)"
        if self.cursor is not None and any(modified < self.cursor for modified, _ in dated):
            return (
                f"the portal ignores the modification filter (page {self._pages} has datasets "
                f"modified before {self.cursor})"
            )
        if not keep:
            return f"the portal sent the same datasets again (page {self._pages})"
        if (listed.next_cursor, listed.next_skip) == (self.cursor, self.skip):
            return f"the cursor does not move (page {self._pages})"
        if self._count_stays(listed):
            return (
                f"the portal's count does not shrink as the filter moves (page {self._pages}: "
                f"{listed.count})"
            )
        return None

    def _count_stays(self, listed: Listed) -> bool:
        """With the filter applied, a count shrinks by the datasets passed before the cursor;
        one that does not, after a whole page was passed, is the portal's whole catalog."""
        if listed.count is None:
            return False
        if self._first_count is None:
            self._first_count = listed.count
            return False
        passed = len(self._seen) - self.skip
        return passed >= self.rows and listed.count >= self._first_count

    def _remember(self, listed: Listed) -> None:
        for i, modified in listed.entries:
            self._seen[i] = modified

    def _where(self) -> str:
        if self.mode == OFFSET:
            return f"start={self.skip}"
        return f"{self.cursor or 'the start'}, skip {self.skip}"

    @property
    def seen(self) -> int:
        return len(self._seen)
