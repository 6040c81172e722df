"""What a node holds (`node status`), and checking it again (`node verify`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from priorizer.agent.client import ServerClient, ServerError, ServerUnavailable
from priorizer.agent.download import CHUNK_BYTES
from priorizer.agent.state import FAILED, HELD, PARTIAL, FileRecord, NodeState


def summarize(state: NodeState) -> dict[str, Any]:
    records = state.all()
    held = [r for r in records if r.status == HELD]
    partial = [r for r in records if r.status == PARTIAL]
    return {
        "node_id": state.get_meta("node_id"),
        "server": state.get_meta("server"),
        "held": {
            "files": len(held),
            "bytes": sum(r.size_bytes or 0 for r in held),
            "verified": sum(1 for r in held if r.verified_at is not None),
        },
        "partial": {
            "files": len(partial),
            "bytes": sum(_size(state.partial_path(state.directory / r.path)) for r in partial),
        },
        "failed": sum(1 for r in records if r.status == FAILED),
        "unreported": sum(1 for r in records if not r.reported and r.status in (HELD, FAILED)),
        "files": [_file(r) for r in held],
    }


def _file(record: FileRecord) -> dict[str, Any]:
    return {
        "asset_id": record.asset_id,
        "name": record.name,
        "path": record.path,
        "size_bytes": record.size_bytes,
        "sha256": record.sha256,
        "verified_at": record.verified_at,
        "reported": record.reported,
        "magnet_link": record.magnet_link,
    }


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify(
    state: NodeState, *, client: ServerClient | None, echo: Callable[[str], Any]
) -> list[str]:
    """Hash every held file again. A file missing or changed is damaged: it is reported to the
    server (when one is given) and removed. The damaged assets' ids."""
    damaged: list[str] = []
    for record in state.all(status=HELD):
        path = state.directory / record.path
        problem = _problem(path, record)
        if problem is None:
            state.verified(record.asset_id)
            echo(f"ok       {record.asset_id} {record.name}")
            continue
        damaged.append(record.asset_id)
        reported = _report(client, record.asset_id, problem, echo)
        state.discard(record.asset_id, reason=problem, reported=reported)
        path.unlink(missing_ok=True)
        echo(f"DAMAGED  {record.asset_id} {record.name}: {problem}")
    echo(f"{len(damaged)} damaged of {len(damaged) + len(state.all(status=HELD))} held files")
    return damaged


def _problem(path: Path, record: FileRecord) -> str | None:
    if not path.exists():
        return "the file is missing"
    size = path.stat().st_size
    if size != record.size_bytes:
        return f"its size changed from {record.size_bytes} to {size} bytes"
    digest = sha256_of(path)
    if digest != record.sha256:
        return f"its SHA-256 changed from {record.sha256} to {digest}"
    return None


def _report(
    client: ServerClient | None, asset_id: str, problem: str, echo: Callable[[str], Any]
) -> bool:
    if client is None:
        echo(f"         (no server known: {asset_id} not reported)")
        return False
    try:
        client.discard(asset_id, reason=f"damaged copy: {problem}")
    except ServerError as error:
        echo(f"         (the server refused the report: {error})")
        return error.status == 404  # it holds no copy of ours: nothing to take back
    except ServerUnavailable as error:
        echo(f"         (the server did not answer: {error})")
        return False
    return True
