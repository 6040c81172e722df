"""Pure parsers: what a directory listing, a landing page or an FTP LIST answer links to.

Directory listings are the autoindex pages of Apache, nginx, lighttpd, IIS, Tomcat and Python's
`http.server`; a page that is none of them is a landing page. Only links that can be assets come
out: same-site, not navigation (the parent folder, the site's own header and footer, sort links
of autoindex pages), not `mailto:` or `javascript:`, not anchors. Whether a link is a file is
decided by probing it (`discovery.crawl`); here a listing's links ending in `/` are folders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

LISTING = "listing"
LANDING = "landing"

# Each server's autoindex says what it is in a way a landing page would not.
_LISTING_MARKERS = (
    re.compile(r"<title>\s*index of\s", re.I),  # Apache, nginx, lighttpd
    re.compile(r"<h1>\s*index of\s", re.I),
    re.compile(r'id\s*=\s*"indexlist"', re.I),  # Apache tables with a theme and no title
    re.compile(r'href\s*=\s*"\?C=N;O=[AD]"', re.I),  # Apache's sort links (a HEADER.html first)
    re.compile(r'alt\s*=\s*"\[PARENTDIR\]"', re.I),
    re.compile(r"\[to parent directory\]", re.I),  # IIS
    re.compile(r'summary\s*=\s*"directory listing"', re.I),  # lighttpd
    re.compile(r"directory listing for\s", re.I),  # Python's http.server, Tomcat
)
_SKIPPED_SCHEMES = ("mailto:", "javascript:", "data:", "tel:")


@dataclass(frozen=True, slots=True)
class PageLinks:
    kind: str  # LISTING or LANDING
    files: list[str] = field(default_factory=list)  # candidate files, absolute URLs
    folders: list[str] = field(default_factory=list)  # sub-folders of a listing


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(str(values["href"]).strip())
        elif tag == "base" and values.get("href") and self.base is None:
            self.base = str(values["href"]).strip()


def is_listing(html: str) -> bool:
    return any(marker.search(html) for marker in _LISTING_MARKERS)


def parse_page(html: str, page_url: str) -> PageLinks:
    """The links of an HTML page that may be assets, each once, in page order."""
    anchors = _Anchors()
    anchors.feed(html)
    anchors.close()
    base = urljoin(page_url, anchors.base) if anchors.base else page_url
    listing = is_listing(html)
    links: list[str] = []
    for href in anchors.hrefs:
        url = _asset_link(href, base, page_url, listing=listing)
        if url is not None and url not in links:
            links.append(url)
    if not listing:
        return PageLinks(LANDING, files=links)
    folders = [url for url in links if urlsplit(url).path.endswith("/")]
    files = [url for url in links if url not in folders]
    return PageLinks(LISTING, files=files, folders=folders)


def _asset_link(href: str, base: str, page_url: str, *, listing: bool) -> str | None:
    if not href or href.startswith("#") or href.lower().startswith(_SKIPPED_SCHEMES):
        return None
    url, _fragment = urldefrag(urljoin(base, href))
    target, page = urlsplit(url), urlsplit(page_url)
    if target.scheme not in ("http", "https", "ftp") or not same_site(url, page_url):
        return None
    if (target.path, target.query) == (page.path, page.query):
        return None  # the page itself
    if listing:
        # An entry lives below the listed folder: anything else (the parent, the site's
        # header, icons) is navigation; so is a link with a query (sort links).
        folder = page.path if page.path.endswith("/") else page.path + "/"
        if target.query or not target.path.startswith(folder) or target.path == folder:
            return None
    return url


def same_site(url: str, other: str) -> bool:
    """Same scheme family and host (the port too): what a crawl may follow."""
    a, b = urlsplit(url), urlsplit(other)
    return (a.hostname or "").lower() == (b.hostname or "").lower() and a.port == b.port


def name_of(url: str) -> str:
    """A file's name: the last segment of its path, decoded."""
    path = urlsplit(url).path.rstrip("/")
    return unquote(path.rsplit("/", 1)[-1]) or urlsplit(url).hostname or url


@dataclass(frozen=True, slots=True)
class FtpEntry:
    name: str
    is_folder: bool
    size_bytes: int | None


_UNIX = re.compile(
    r"^(?P<type>[-dlbcps])[-rwxsStTl]{9}[+@.]?\s+\d+\s+(?:\S+\s+){1,2}(?P<size>\d+)\s+"
    r"(?:\w{3}\s+\d{1,2}\s+(?:\d{1,2}:\d{2}|\d{4}))\s+(?P<name>.+)$"
)
_MSDOS = re.compile(
    r"^\d{2}-\d{2}-\d{2,4}\s+\d{1,2}:\d{2}(?:[AP]M)?\s+(?P<size><DIR>|<JUNCTION>|\d+)\s+(?P<name>.+)$",
    re.I,
)


def parse_ftp_list(text: str) -> list[FtpEntry]:
    """Entries of an FTP LIST answer, Unix or MS-DOS style; other lines (banners, `total N`,
    replies) are skipped, and so are `.` and `..`."""
    entries: list[FtpEntry] = []
    for line in text.splitlines():
        entry = _ftp_entry(line.rstrip("\r"))
        if entry is not None and entry.name not in (".", ".."):
            entries.append(entry)
    return entries


def _ftp_entry(line: str) -> FtpEntry | None:
    if match := _UNIX.match(line):
        kind, name = match["type"], match["name"]
        if kind == "l":
            # A link: its own name, before the arrow; whether it leads to a folder is unknown,
            # so it is probed as a file (a folder then fails to give a size).
            return FtpEntry(name.split(" -> ", 1)[0], False, None)
        if kind not in "-d":
            return None
        return FtpEntry(name, kind == "d", None if kind == "d" else int(match["size"]))
    if match := _MSDOS.match(line):
        size, name = match["size"].upper(), match["name"]
        if size == "<JUNCTION>":
            return FtpEntry(re.split(r"\s+[-=]>\s+", name, maxsplit=1)[0], True, None)
        return FtpEntry(name, size == "<DIR>", None if size == "<DIR>" else int(size))
    return None
