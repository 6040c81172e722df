"""Torrents of what the node holds (libtorrent): seed each verified file, and fetch a file from
the peers named in magnet links when its origin is gone.

Peers are found through the magnet's trackers and the DHT in the real world. A magnet link made
here also names this node's own address (`x.pe=host:port`) when it listens on a specific one,
so that nodes reach each other with no tracker and no DHT (on a campaign's network, and in
tests on loopback with discovery off).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libtorrent as lt

POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class TorrentSettings:
    listen: str = "0.0.0.0:6881"  # host:port; port 0 lets the system choose
    discovery: bool = True  # DHT, local peer discovery, UPnP and NAT-PMP
    announce: str | None = None  # host:port put in magnet links; default: a specific listen host
    trackers: tuple[str, ...] = ()


class PeerFetchFailed(Exception):
    pass


class Torrents:
    """One libtorrent session for the agent's whole run, opened when first needed (an agent
    that does not seed listens only once it fetches from peers)."""

    def __init__(self, settings: TorrentSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._opened: Any = None
        self._seeding: dict[str, Any] = {}

    @property
    def _session(self) -> Any:
        with self._lock:
            if self._opened is None:
                self._opened = self._open()
            return self._opened

    def _open(self) -> Any:
        settings = self.settings
        return lt.session(
            {
                "listen_interfaces": settings.listen,
                "enable_dht": settings.discovery,
                "enable_lsd": settings.discovery,
                "enable_upnp": settings.discovery,
                "enable_natpmp": settings.discovery,
                "alert_mask": lt.alert_category.error,
                "user_agent": "priorizer-node/0.1",
            }
        )

    def close(self) -> None:
        with self._lock:
            if self._opened is not None:
                self._opened.pause()
                self._opened = None

    def listen_address(self) -> str | None:
        """host:port that peers can reach, when the node listens on one specific address."""
        if self.settings.announce:
            return self.settings.announce
        host = self.settings.listen.rsplit(":", 1)[0].strip("[]")
        try:
            if ipaddress.ip_address(host).is_unspecified:
                return None
        except ValueError:
            return None
        return f"{host}:{self._session.listen_port()}"

    def seed(self, path: Path) -> str:
        """Seed the file at `path` (already verified); its magnet link."""
        creator = lt.create_torrent(lt.list_files(str(path)))
        for tracker in self.settings.trackers:
            creator.add_tracker(tracker)
        lt.set_piece_hashes(creator, str(path.parent))
        info = lt.torrent_info(creator.generate())
        params = lt.add_torrent_params()
        params.ti = info
        params.save_path = str(path.parent)
        params.flags |= lt.torrent_flags.seed_mode  # we hashed it ourselves a moment ago
        handle = self._session.add_torrent(params)
        with self._lock:
            self._seeding[str(path)] = handle
        magnet = str(lt.make_magnet_uri(info))
        address = self.listen_address()
        return f"{magnet}&x.pe={address}" if address else magnet

    def stop_seeding(self, path: Path) -> None:
        with self._lock:
            handle = self._seeding.pop(str(path), None)
        if handle is not None:
            self._session.remove_torrent(handle)

    def fetch(
        self, magnet_links: list[str], *, into: Path, timeout: float, stop: threading.Event
    ) -> Path:
        """Download the file the magnet links name into the folder `into`; its path there.
        Pieces are checked against the torrent's hashes as they arrive."""
        params = _merged(magnet_links)
        params.save_path = str(into)
        into.mkdir(parents=True, exist_ok=True)
        handle = self._session.add_torrent(params)
        try:
            _wait_whole(handle, timeout=timeout, stop=stop)
            files = handle.torrent_file().files()
            if files.num_files() != 1:
                raise PeerFetchFailed("the torrent holds more than one file")
            return into / files.file_path(0)
        finally:
            self._session.remove_torrent(handle)


def _merged(magnet_links: list[str]) -> Any:
    """The first link's torrent, with the peers and trackers of every link naming the same one."""
    first = lt.parse_magnet_uri(magnet_links[0])
    peers, trackers = list(first.peers), list(first.trackers)
    for link in magnet_links[1:]:
        other = lt.parse_magnet_uri(link)
        if str(other.info_hashes) == str(first.info_hashes):
            peers += [p for p in other.peers if p not in peers]
            trackers += [t for t in other.trackers if t not in trackers]
    first.peers, first.trackers = peers, trackers
    return first


def _wait_whole(handle: Any, *, timeout: float, stop: threading.Event) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = handle.status()
        if status.is_seeding:
            return
        if status.errc.value() != 0:
            raise PeerFetchFailed(f"torrent error: {status.errc.message()}")
        if stop.wait(POLL_SECONDS):
            raise PeerFetchFailed("stopping")
    raise PeerFetchFailed(f"no peer gave the whole file within {timeout:.0f} s")
