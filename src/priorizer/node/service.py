"""Node use cases."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from priorizer.errors import Conflict, NotFound
from priorizer.node import repo
from priorizer.node.models import Node
from priorizer.node.repo import Seen


def record_seen(
    session: Session, *, node_id: str, free_space_mb: float | None, now: datetime
) -> Seen:
    """Create or refresh the node; its stored lease cap (None: the initial one applies), its
    completions and its latest failure."""
    return repo.record_seen(session, node_id=node_id, free_space_mb=free_space_mb, now=now)


def lock_node(session: Session, *, node_id: str) -> Node | None:
    return repo.get(session, node_id=node_id, for_update=True)


def ensure_nodes(session: Session, *, node_ids: Sequence[str], now: datetime) -> None:
    repo.ensure(session, node_ids=node_ids, now=now)


def get_node(session: Session, *, node_id: str) -> Node:
    node = repo.get(session, node_id=node_id)
    if node is None:
        raise NotFound(f"no node {node_id!r}")
    return node


def list_nodes(session: Session, *, after: str | None = None, limit: int = 100) -> Sequence[Node]:
    return repo.list_page(session, after=after, limit=limit)


def recently_seen(session: Session, *, limit: int) -> Sequence[Node]:
    """The nodes seen last, latest first."""
    return repo.recently_seen(session, limit=limit)


def count_nodes(session: Session) -> int:
    return repo.count(session)


def count_lost(session: Session) -> int:
    return repo.count(session, lost=True)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def enroll(session: Session, *, node_id: str, now: datetime, rotate: bool) -> str:
    """A new token for the node (created if unknown); only its digest is kept. An enrolled node
    gets a new one only when `rotate` (its old token stops working)."""
    repo.ensure(session, node_ids=[node_id], now=now)
    node = repo.get(session, node_id=node_id, for_update=True)
    assert node is not None
    if node.token_hash is not None and not rotate:
        raise Conflict(f"node {node_id!r} is enrolled already; an admin can rotate its token")
    token = secrets.token_urlsafe(32)
    repo.set_token_hash(session, node_id=node_id, token_hash=token_digest(token), now=now)
    return token


def revoke(session: Session, *, node_id: str, now: datetime) -> None:
    if repo.get(session, node_id=node_id) is None:
        raise NotFound(f"no node {node_id!r}")
    repo.set_token_hash(session, node_id=node_id, token_hash=None, now=now)


def node_of_token(session: Session, *, token: str) -> str | None:
    return repo.by_token_hash(session, token_hash=token_digest(token))
