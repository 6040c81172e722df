"""Who may do what, and how much: the admin token, request limits, and the one error shape.

- Admin actions need `Authorization: Bearer <PRIORIZER_ADMIN_TOKEN>`, compared in constant
  time. With no token configured, the server refuses to listen beyond loopback (`cli.serve`),
  so admin actions are open to that machine only.
- Node endpoints are rate limited per client address, then per node (429 with Retry-After):
  the node its token proves, or in open mode the node named from that address. Every request
  body is limited in size (413).
- Every error (4xx, 5xx) is `{"detail", "status", "request_id"}`; no stack trace or SQL ever
  reaches a client.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import time
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from priorizer.config import Settings
from priorizer.errors import PriorizerError

log = logging.getLogger(__name__)


class Unauthorized(PriorizerError):
    status_code = 401


class Forbidden(PriorizerError):
    status_code = 403


class TooManyRequests(PriorizerError):
    status_code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_body(status: int, detail: Any, request_id: str | None) -> dict[str, Any]:
    return {"detail": detail, "status": status, "request_id": request_id}


def error_response(
    request: Request | None, status: int, detail: Any, headers: dict[str, str] | None = None
) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id") if request else None
    return JSONResponse(error_body(status, detail, request_id), status, headers=headers)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_bearer = HTTPBearer(auto_error=False, description="PRIORIZER_ADMIN_TOKEN")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def require_admin(request: Request, credentials: Credentials) -> None:
    """Admin actions: the bearer token must be PRIORIZER_ADMIN_TOKEN (when one is set)."""
    settings: Settings = request.app.state.settings
    if settings.admin_token is None:
        return  # loopback only: `cli.serve` refuses anything else without a token
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


class RateLimits:
    """Moving-window limits on node endpoints, per client address and per node, in this
    process's memory (each instance limits its own share)."""

    def __init__(self, *, per_node: str, per_address: str) -> None:
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_node: RateLimitItem = parse(per_node)
        self.per_address: RateLimitItem = parse(per_address)

    def check(self, *, address: str | None, node_key: str | None) -> None:
        """The address's limit first: a call it refuses counts against no node."""
        for item, kind, key in (
            (self.per_address, "address", address),
            (self.per_node, "node", node_key),
        ):
            if key is not None and not self.limiter.hit(item, kind, key):
                reset = self.limiter.get_window_stats(item, kind, key).reset_time
                wait = max(1, math.ceil(reset - time.time()))
                raise TooManyRequests(
                    f"too many requests from this {kind} (limit {item}); retry in {wait} s",
                    retry_after=wait,
                )


def limit_node_call(request: Request, node_id: str | None, identity: str | None) -> None:
    """Count a node endpoint call against its client address, then its node: the node its
    token proves (NODE_AUTH), or in open mode the node named from that address, so calls from
    elsewhere naming a node cannot use up that node's allowance."""
    limits: RateLimits = request.app.state.rate_limits
    address = request.client.host if request.client else None
    if identity is not None:
        node_key: str | None = identity
    else:
        node_key = None if node_id is None else f"{address} {node_id}"
    limits.check(address=address, node_key=node_key)


class BodyLimit:
    """Refuses request bodies over `max_bytes` with 413, whether they say their length or
    stream it, before the application reads them whole."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                await self._refuse(scope, send)
            else:  # the server holds the client to the length it declared
                await self.app(scope, receive, send)
            return
        # Streamed (chunked): read it here, up to the limit, then hand it on.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        request_id = scope.get("state", {}).get("request_id")
        detail = f"request body larger than {self.max_bytes} bytes (MAX_REQUEST_BYTES)"
        response = JSONResponse(error_body(413, detail, request_id), 413)
        await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class ErrorBarrier:
    """Turns an unexpected exception into a 500 of the one error shape, inside the request
    log (so it carries the request id) rather than Starlette's last-resort handler outside it.
    The exception, with its traceback, goes to the log only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            request_id = scope.get("state", {}).get("request_id")
            log.exception("request %s failed", request_id)
            if started:
                raise  # too late for an answer of ours: the connection is cut
            detail = "internal error; the server's log has the details"
            await JSONResponse(error_body(500, detail, request_id), 500)(scope, receive, send)


def node_identity(request: Request, credentials: Credentials) -> str | None:
    """With NODE_AUTH on, the node the bearer token belongs to (401 without a valid one);
    None when node auth is off."""
    settings: Settings = request.app.state.settings
    if not settings.node_auth:
        return None
    from priorizer.node import service as node_service

    token = credentials.credentials if credentials is not None else ""
    node_id = None
    if token:
        with request.app.state.database.read() as session:
            node_id = node_service.node_of_token(session, token=token)
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


def enrollment_allowed(request: Request, credentials: Credentials) -> bool:
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
