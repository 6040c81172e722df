"""The reading half of a harvest, run in a worker process: fetch a page, parse it, map it, and
score what depends on the dataset alone. The harvest's own process only writes, so the two
halves use both cores (Python threads would take turns).

Everything here is pure but for the request; what crosses the process boundary is small:
the request going, the mapped page coming back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from priorizer.harvest.ckan import CkanClient, ClientOptions
from priorizer.harvest.mapping import Mapped, map_packages, parse_time
from priorizer.scoring.policy import Facts, Policy, dataset_factors

_clients: dict[ClientOptions, CkanClient] = {}  # one per portal in each worker, kept alive


@dataclass(frozen=True, slots=True)
class PageRequest:
    fq: list[str]
    q: str | None
    sort: str
    rows: int
    cursor: str | None  # where the listing is: see `next_cursor`
    skip: int
    now: datetime  # for the age factor


@dataclass(slots=True)
class ReadPage:
    count: int | None
    mapped: Mapped = field(default_factory=Mapped)
    cursor: str | None = None
    skip: int = 0
    retries: int = 0
    dataset_points: dict[str, float] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.mapped.datasets and not self.mapped.skipped


def read_page(options: ClientOptions, policy: Policy, request: PageRequest) -> ReadPage:
    client = _clients.get(options)
    if client is None:
        client = _clients[options] = CkanClient(
            options.portal,
            timeout_seconds=options.timeout_seconds,
            attempts=options.attempts,
            backoff_seconds=options.backoff_seconds,
            max_backoff_seconds=options.max_backoff_seconds,
        )
    retries: list[str] = []
    client.on_retry = retries.append
    page = client.search(
        fq=request.fq, q=request.q, sort=request.sort, rows=request.rows, start=request.skip
    )
    if not page.results:
        return ReadPage(page.count, retries=len(retries))
    cursor, skip = next_cursor(request.cursor, request.skip, page.results)
    mapped = map_packages(page.results)
    return ReadPage(
        page.count,
        mapped,
        cursor,
        skip,
        len(retries),
        dataset_points(policy, mapped, now=request.now),
    )


def dataset_points(policy: Policy, mapped: Mapped, *, now: datetime) -> dict[str, float]:
    """Each dataset's points under the policy, size aside (the same for each of its files)."""
    return {
        d.id: sum(
            f.points
            for f in dataset_factors(
                policy,
                Facts(
                    organization=d.organization,
                    title=d.title,
                    name=d.name,
                    tags=d.tags,
                    views=d.views,
                    modified_at=d.modified_at,
                ),
                now=now,
            )
        )
        for d in mapped.datasets
    }


def to_millis(moment: datetime) -> str:
    """An instant as the search index compares `metadata_modified`: UTC, to the millisecond."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _millis_of(package: Any) -> str | None:
    moment = parse_time(package.get("metadata_modified")) if isinstance(package, dict) else None
    return to_millis(moment) if moment is not None else None


def next_cursor(cursor: str | None, skip: int, results: list[Any]) -> tuple[str | None, int]:
    """Where the listing continues after `results`: the last instant met, and how many datasets
    at that instant were taken (those of earlier pages too, when the instant is the same)."""
    last = _millis_of(results[-1])
    if last is None:  # no usable timestamp: go on by position
        return cursor, skip + len(results)
    same = sum(1 for package in results if _millis_of(package) == last)
    return last, same + (skip if last == cursor else 0)
