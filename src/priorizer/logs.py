"""Logging: one line per request (with its id), as text or as JSON lines (LOG_FORMAT=json).

Configured in every process that logs: the CLI, and each server worker (see `app`), so that
uvicorn's own messages and ours come out through the same handler, in the same format.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from priorizer import metrics
from priorizer.config import Settings

REQUEST_ID_HEADER = "X-Request-Id"
# A caller's own request id is kept when it looks like one; otherwise we make one.
_GIVEN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Fields requests add to their log records, carried into JSON lines.
REQUEST_FIELDS = ("request_id", "method", "route", "status", "duration_ms")

access_log = logging.getLogger("priorizer.access")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({f: getattr(record, f) for f in REQUEST_FIELDS if hasattr(record, f)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(settings: Settings) -> None:
    """Send every logger's records to stderr in the configured format and level."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel("DEBUG" if settings.debug else settings.log_level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # Requests are logged by `RequestLog`, with their ids; uvicorn's own access lines (which it
    # writes only when that logger has somewhere to go) would say the same thing again.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    # Alembic says which plugins it loads and which migrations it runs at INFO: noise in a
    # command's output. `startup` says in one line of its own when the schema changed. And
    # APScheduler says twice per cycle that it ran the job: `scheduler` says what it did.
    for chatty in ("alembic", "apscheduler"):
        logging.getLogger(chatty).setLevel(logging.NOTSET if settings.debug else logging.WARNING)


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
