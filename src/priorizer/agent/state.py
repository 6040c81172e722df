"""What a node holds, keeps in flight and has reported: a small SQLite file in its folder.

Every change is one statement in autocommit mode, so a killed agent leaves the file consistent:
at worst a completion was sent and not yet marked acknowledged, and is sent again (the server
answers a repeated completion as recorded).
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

STATE_FILE = "priorizer-node.sqlite3"
FILES_DIR = "files"
PARTIAL_SUFFIX = ".partial"

# A file's life on the node.
PARTIAL = "partial"  # being fetched, or interrupted: the partial file is kept to resume
HELD = "held"  # whole and hashed; `reported` says whether the server acknowledged it
FAILED = "failed"  # given up and reported with a reason code
DISCARDED = "discarded"  # found damaged by `verify`, reported, removed from disk

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    asset_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    status TEXT NOT NULL,
    size_bytes INTEGER,
    sha256 TEXT,
    magnet_link TEXT,
    reported INTEGER NOT NULL DEFAULT 0,
    reason_code TEXT,
    reason TEXT,
    updated_at TEXT NOT NULL,
    verified_at TEXT
);
"""


@dataclass(frozen=True, slots=True)
class FileRecord:
    asset_id: str
    url: str
    name: str
    path: str  # relative to the node's folder
    status: str
    size_bytes: int | None
    sha256: str | None
    magnet_link: str | None
    reported: bool
    reason_code: str | None
    reason: str | None
    updated_at: str
    verified_at: str | None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, *, fallback: str = "file") -> str:
    """A file or folder name made of safe characters only (no separators, no dot-files)."""
    cleaned = _UNSAFE.sub("_", text).strip("._")[:120]
    return cleaned or fallback


class NodeState:
    """The node's folder: its state file and the files it holds. Safe to share across threads."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files_dir = directory / FILES_DIR
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            directory / STATE_FILE, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def node_id(self, given: str | None = None) -> str:
        """The node's id: the one given (and kept), else the one kept, else a new one."""
        if given:
            self.set_meta("node_id", given)
            return given
        kept = self.get_meta("node_id")
        if kept is None:
            kept = f"node-{secrets.token_hex(8)}"
            self.set_meta("node_id", kept)
        return kept

    # --- files ------------------------------------------------------------------------------

    def path_for(self, asset_id: str, name: str) -> Path:
        """Where an asset's file lives: a folder per asset, so names never collide."""
        return self.files_dir / safe_name(asset_id, fallback="asset") / safe_name(name)

    def partial_path(self, final: Path) -> Path:
        return final.with_name(final.name + PARTIAL_SUFFIX)

    def get(self, asset_id: str) -> FileRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM files WHERE asset_id = ?", (asset_id,)).fetchone()
        return None if row is None else _record(row)

    def all(self, *, status: str | None = None) -> list[FileRecord]:
        query, args = "SELECT * FROM files", tuple[str, ...]()
        if status is not None:
            query, args = query + " WHERE status = ?", (status,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY asset_id", args).fetchall()
        return [_record(row) for row in rows]

    def start(self, asset_id: str, *, url: str, name: str, path: Path) -> None:
        """Record a download starting (or resuming): the file is partial until it is whole."""
        relative = str(path.relative_to(self.directory))
        self._write(
            "INSERT INTO files (asset_id, url, name, path, status, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (asset_id) DO UPDATE SET url = excluded.url, "
            "name = excluded.name, path = excluded.path, status = excluded.status, "
            "size_bytes = NULL, sha256 = NULL, magnet_link = NULL, reported = 0, "
            "reason_code = NULL, reason = NULL, updated_at = excluded.updated_at",
            (asset_id, url, name, relative, PARTIAL, _now()),
        )

    def hold(self, asset_id: str, *, size_bytes: int, sha256: str) -> None:
        now = _now()
        self._write(
            "UPDATE files SET status = ?, size_bytes = ?, sha256 = ?, reported = 0, "
            "updated_at = ?, verified_at = ? WHERE asset_id = ?",
            (HELD, size_bytes, sha256, now, now, asset_id),
        )

    def set_magnet(self, asset_id: str, magnet_link: str) -> None:
        self._write("UPDATE files SET magnet_link = ? WHERE asset_id = ?", (magnet_link, asset_id))

    def mark_reported(self, asset_id: str) -> None:
        self._write(
            "UPDATE files SET reported = 1, updated_at = ? WHERE asset_id = ?", (_now(), asset_id)
        )

    def verified(self, asset_id: str) -> None:
        self._write("UPDATE files SET verified_at = ? WHERE asset_id = ?", (_now(), asset_id))

    def fail(self, asset_id: str, *, code: str, reason: str, reported: bool) -> None:
        self._write(
            "UPDATE files SET status = ?, reason_code = ?, reason = ?, reported = ?, "
            "updated_at = ? WHERE asset_id = ?",
            (FAILED, code, reason, int(reported), _now(), asset_id),
        )

    def discard(self, asset_id: str, *, reason: str, reported: bool) -> None:
        self._write(
            "UPDATE files SET status = ?, reason_code = 'damaged', reason = ?, reported = ?, "
            "updated_at = ? WHERE asset_id = ?",
            (DISCARDED, reason, int(reported), _now(), asset_id),
        )

    def unreported(self, status: str) -> list[FileRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM files WHERE status = ? AND reported = 0 ORDER BY asset_id",
                (status,),
            ).fetchall()
        return [_record(row) for row in rows]

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)

    # --- disk -------------------------------------------------------------------------------

    def bytes_on_disk(self) -> int:
        """Bytes of every file under the node's files folder, partial ones included."""
        return sum(path.stat().st_size for path in self._walk())

    def _walk(self) -> Iterator[Path]:
        for path in self.files_dir.rglob("*"):
            if path.is_file():
                yield path


def _record(row: sqlite3.Row) -> FileRecord:
    values = dict(row)
    values["reported"] = bool(values["reported"])
    return FileRecord(**values)
