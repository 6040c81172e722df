"""FTP origins: a file's size (`SIZE`), or a folder's entries (`LIST`), with ftplib in a thread.

An FTP URL is probed once per connection: `SIZE` answers for a file; a path that has no size
but can be entered (`CWD`) is a folder, listed; neither is gone (550, as a 404).
"""

from __future__ import annotations

import asyncio
import ftplib
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit

from priorizer.discovery.listings import FtpEntry, parse_ftp_list
from priorizer.discovery.prober import Probe, Prober

FOLDER_TYPE = "inode/directory"


@dataclass(frozen=True, slots=True)
class FtpAnswer:
    probe: Probe
    entries: list[FtpEntry] = field(default_factory=list)

    def child_url(self, entry: FtpEntry) -> str:
        base = self.probe.url if self.probe.url.endswith("/") else self.probe.url + "/"
        return urljoin(base, entry.name.replace("%", "%25").replace(" ", "%20")) + (
            "/" if entry.is_folder else ""
        )


async def probe_ftp(prober: Prober, url: str, *, timeout_seconds: float) -> FtpAnswer:
    async with prober.slot(url):
        return await asyncio.to_thread(_probe, url, timeout_seconds)


def _probe(url: str, timeout_seconds: float) -> FtpAnswer:
    parts = urlsplit(url)
    path = unquote(parts.path) or "/"
    try:
        with ftplib.FTP(timeout=timeout_seconds) as client:
            client.connect(parts.hostname or "", parts.port or 21)
            client.login(unquote(parts.username or "anonymous"), unquote(parts.password or ""))
            return _file_or_folder(client, url, path)
    except (OSError, EOFError, ftplib.Error) as error:
        return FtpAnswer(Probe(url, error=f"{type(error).__name__}: {error}"))


def _file_or_folder(client: ftplib.FTP, url: str, path: str) -> FtpAnswer:
    client.voidcmd("TYPE I")
    if not path.endswith("/"):
        try:
            size = client.size(path)
        except ftplib.error_perm:
            size = None
        if size is not None:
            return FtpAnswer(Probe(url, final_url=url, status=200, size_bytes=size))
    try:
        client.cwd(path)
    except ftplib.error_perm:
        return FtpAnswer(Probe(url, final_url=url, status=404))
    lines: list[str] = []
    client.retrlines("LIST", lines.append)
    folder = Probe(url, final_url=url, status=200, content_type=FOLDER_TYPE)
    return FtpAnswer(folder, parse_ftp_list("\n".join(lines)))
