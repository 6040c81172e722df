"""Who may do what: the admin token, node tokens, enrollment.

- Admin actions need `Authorization: Bearer <PRIORIZER_ADMIN_TOKEN>`, compared in constant
  time. With no token configured, the server refuses to listen beyond loopback
  (`Settings.unsafe_to_serve`), so admin actions are open to that machine only.
- With NODE_AUTH on, node calls carry the node's own token, and act for that node only.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from priorizer.config import Settings
from priorizer.errors import Forbidden, Unauthorized

_bearer = HTTPBearer(auto_error=False, description="PRIORIZER_ADMIN_TOKEN")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def require_admin(request: Request, credentials: Credentials) -> None:
    """Admin actions: the bearer token must be PRIORIZER_ADMIN_TOKEN (when one is set)."""
    settings: Settings = request.app.state.settings
    if settings.admin_token is None:
        return  # loopback only: `Settings.unsafe_to_serve` refuses anything else without one
    given = credentials.credentials if credentials is not None else ""
    wanted = settings.admin_token.get_secret_value()
    if not hmac.compare_digest(given.encode(), wanted.encode()):
        raise Unauthorized("this is an admin action: send Authorization: Bearer <admin token>")


ADMIN = [Depends(require_admin)]
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Admin action: a missing or wrong admin token."}
}
NODE_ERRORS: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many requests from this address or node; see Retry-After."}
}


async def node_identity(request: Request, credentials: Credentials) -> str | None:
    """With NODE_AUTH on, the node the bearer token belongs to (401 without a valid one);
    None when node auth is off. Async (no worker thread for every node call): only the
    token's lookup, a database read, goes to a worker thread."""
    settings: Settings = request.app.state.settings
    if not settings.node_auth:
        return None
    token = credentials.credentials if credentials is not None else ""
    node_id = await run_in_threadpool(request.app.state.node_of_token, token) if token else None
    if node_id is None:
        raise Unauthorized("node calls need the node's token: Authorization: Bearer <token>")
    return node_id


NodeIdentity = Annotated[str | None, Depends(node_identity)]
_Claim = TypeVar("_Claim", str, str | None)


def acting_node(claimed: _Claim, identity: str | None) -> _Claim | str:
    """The node a call acts for: the token's, whatever the body says; a body naming another
    node is refused (403), so a node can touch only its own leases."""
    if identity is None:
        return claimed
    if claimed is not None and claimed != identity:
        raise Forbidden(f"this token belongs to node {identity!r}: it cannot act for {claimed!r}")
    return identity


async def enrollment_allowed(request: Request, credentials: Credentials) -> bool:
    """Whether this call may enroll a node, and as whom: True for an admin (who may also
    rotate a token), False for a node holding the enrollment secret; 401 otherwise."""
    settings: Settings = request.app.state.settings
    given = credentials.credentials if credentials is not None else ""
    if settings.admin_token is None or hmac.compare_digest(
        given.encode(), settings.admin_token.get_secret_value().encode()
    ):
        return True
    secret = request.headers.get("x-enrollment-secret", "")
    wanted = settings.enrollment_secret
    if wanted is not None and hmac.compare_digest(
        secret.encode(), wanted.get_secret_value().encode()
    ):
        return False
    raise Unauthorized("enrolling a node needs the admin token or X-Enrollment-Secret")


NODE_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "NODE_AUTH is on and the node's token is missing or wrong."},
    403: {"description": "The token belongs to another node than the body names."},
    429: NODE_ERRORS[429],
}
