"""The middleware every request passes, outermost first: `RequestLog` (an id, a log line,
metrics), `BodyLimit` (413 past MAX_REQUEST_BYTES), `ErrorBarrier` (an unexpected exception
becomes a 500 of the one error shape)."""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from priorizer import metrics
from priorizer.web.errors import error_body

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = "X-Request-Id"
# A caller's own request id is kept when it looks like one; otherwise we make one.
_GIVEN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
access_log = logging.getLogger("priorizer.access")


class RequestLog:
    """Gives every request an id (the caller's X-Request-Id if it is a sane one), returns it in
    the response's X-Request-Id header, and logs one line when the request is done: method,
    route (the template, not the path), status and duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _GIVEN_ID.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            template = getattr(scope.get("route"), "path", None)
            route = template or scope["path"]
            seconds = time.perf_counter() - started
            duration_ms = round(seconds * 1000, 3)
            # Paths no route template names (static files, /docs) label their series by the
            # path itself when they exist; any 404 is one "unmatched" series.
            label = template or _unrouted_label(scope, status)
            metrics.observe_request(scope["method"], label, status, seconds)
            access_log.info(
                "%s %s %s %.1fms %s",
                scope["method"],
                route,
                status,
                duration_ms,
                request_id,
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                },
            )


def _unrouted_label(scope: Scope, status: int) -> str | None:
    """A metrics label for a request no API route matched: the mount it went to (`/static`),
    or the page itself (`/docs`) when it exists; None (one "unmatched" series) for any 404,
    so that no one can grow the series by asking for made-up paths."""
    if status == 404:
        return None
    return scope.get("root_path") or scope["path"]


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
