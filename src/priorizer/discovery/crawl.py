"""Expansion: from one catalog URL to what is behind it.

A URL that answers a file stays one asset. One that answers a directory listing (HTTP autoindex
or FTP) or a landing page becomes the parent of the files it links to: same-site links, each
probed, kept when the probe says it is a file (a listing's entries unless they turn out to be
folders; a landing page's links unless they answer a page). A listing's sub-folders are
followed to `max_depth`, and a parent gets at most `max_children` children. `robots.txt` is
respected for what a crawl follows, not for the single probe of the listed URL itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from priorizer.discovery import ftp
from priorizer.discovery.listings import LISTING, parse_page
from priorizer.discovery.prober import Probe, Prober

FILE, LANDING, GONE, ERROR = "file", "landing", "gone", "error"
PAGE_MAX_BYTES = 8 * 1024 * 1024
ROBOTS_MAX_BYTES = 512 * 1024
ROBOTS_AGENT = "Priorizer"


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 3
    max_children: int = 10_000
    timeout_seconds: float = 20.0


@dataclass(slots=True)
class Expansion:
    probe: Probe
    kind: str  # FILE, LISTING, LANDING, GONE or ERROR
    children: list[Probe] = field(default_factory=list)
    # The child limit cut it short: children not seen this time are not taken for vanished.
    is_truncated: bool = False

    @property
    def is_expanded(self) -> bool:
        """A listing always is (an empty folder holds no file); a landing page once it links
        to files (a page that links to none may be the data itself)."""
        return self.kind == LISTING or (self.kind == LANDING and bool(self.children))


class Robots:
    """robots.txt per site, read once per run; a site without one allows everything."""

    def __init__(self, prober: Prober) -> None:
        self._prober = prober
        self._sites: dict[str, RobotFileParser | None] = {}
        self._lock = asyncio.Lock()

    async def allows(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return True
        site = f"{parts.scheme}://{parts.netloc}"
        async with self._lock:
            if site not in self._sites:
                self._sites[site] = await self._read(site)
        rules = self._sites[site]
        return rules is None or rules.can_fetch(ROBOTS_AGENT, url)

    async def _read(self, site: str) -> RobotFileParser | None:
        _probe, text = await self._prober.fetch_text(
            f"{site}/robots.txt", max_bytes=ROBOTS_MAX_BYTES
        )
        if text is None:
            return None
        rules = RobotFileParser()
        rules.parse(text.splitlines())
        return rules


async def expand(prober: Prober, robots: Robots, url: str, limits: Limits) -> Expansion:
    if urlsplit(url).scheme == "ftp":
        return await _expand_ftp(prober, robots, url, limits)
    probe = await prober.probe(url)
    if probe.is_gone:
        return Expansion(probe, GONE)
    if not probe.is_ok:
        return Expansion(probe, ERROR)
    if not probe.is_html:
        return Expansion(probe, FILE)
    page, text = await prober.fetch_text(url, max_bytes=PAGE_MAX_BYTES)
    if text is None:
        return Expansion(probe, ERROR if page.error else FILE)
    base = page.final_url or url
    links = parse_page(text, base)
    expansion = Expansion(probe, links.kind)
    if links.kind == LISTING:
        await _walk_listing(prober, robots, base, links.files, links.folders, limits, expansion)
    else:
        await _add_files(prober, robots, links.files, limits, expansion, pages_are_files=False)
    return expansion


async def _walk_listing(
    prober: Prober,
    robots: Robots,
    base: str,
    files: list[str],
    folders: list[str],
    limits: Limits,
    expansion: Expansion,
) -> None:
    seen = {base}
    level = [(files, folders)]
    for depth in range(1, limits.max_depth + 1):
        next_level: list[tuple[str, list[str], list[str]]] = []
        for level_files, level_folders in level:
            more = await _add_files(
                prober, robots, level_files, limits, expansion, pages_are_files=True
            )
            if depth < limits.max_depth:
                next_level += [(f, [], []) for f in level_folders + more if f not in seen]
        if not next_level or expansion.is_truncated:
            return
        seen.update(folder for folder, _f, _d in next_level)
        pages = await asyncio.gather(*(_folder(prober, robots, f) for f, _a, _b in next_level))
        level = [(p.files, p.folders) for p in pages if p is not None]


async def _folder(prober: Prober, robots: Robots, url: str) -> _Links | None:
    if not await robots.allows(url):
        return None
    _probe, text = await prober.fetch_text(url, max_bytes=PAGE_MAX_BYTES)
    if text is None:
        return None
    links = parse_page(text, _probe.final_url or url)
    return _Links(links.files, links.folders) if links.kind == LISTING else None


@dataclass(frozen=True, slots=True)
class _Links:
    files: list[str]
    folders: list[str]


async def _add_files(
    prober: Prober,
    robots: Robots,
    urls: list[str],
    limits: Limits,
    expansion: Expansion,
    *,
    pages_are_files: bool,
) -> list[str]:
    """Probe the links and keep the files; answer the folders found among them (a listing's
    entry without its slash, redirected to one)."""
    known = {child.url for child in expansion.children}
    allowed = [url for url in urls if url not in known and await robots.allows(url)]
    room = limits.max_children - len(expansion.children)
    if len(allowed) > room:
        allowed, expansion.is_truncated = allowed[:room], True
    probes = await asyncio.gather(*(prober.probe(url) for url in allowed))
    folders: list[str] = []
    for probe in probes:
        if not probe.is_ok:
            continue  # dead or failing links are not assets
        if probe.is_html and (probe.final_url or "").endswith("/"):
            folders.append(probe.final_url or probe.url)
        elif pages_are_files or not probe.is_html:
            expansion.children.append(probe)
    return folders


async def _expand_ftp(prober: Prober, robots: Robots, url: str, limits: Limits) -> Expansion:
    answer = await ftp.probe_ftp(prober, url, timeout_seconds=limits.timeout_seconds)
    probe = answer.probe
    if probe.is_gone:
        return Expansion(probe, GONE)
    if not probe.is_ok:
        return Expansion(probe, ERROR)
    if probe.content_type != ftp.FOLDER_TYPE:
        return Expansion(probe, FILE)
    expansion = Expansion(probe, LISTING)
    level = [answer]
    for depth in range(1, limits.max_depth + 1):
        folders: list[str] = []
        for folder in level:
            for entry in folder.entries:
                child = folder.child_url(entry)
                if entry.is_folder:
                    folders.append(child)
                elif len(expansion.children) >= limits.max_children:
                    expansion.is_truncated = True
                    return expansion
                else:
                    # FTP's LIST says what is a file and its size: that is its probe.
                    expansion.children.append(
                        Probe(child, final_url=child, status=200, size_bytes=entry.size_bytes)
                    )
        if depth == limits.max_depth or not folders:
            break
        level = list(
            await asyncio.gather(
                *(ftp.probe_ftp(prober, f, timeout_seconds=limits.timeout_seconds) for f in folders)
            )
        )
    return expansion
