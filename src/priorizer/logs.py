"""Logging: as text or as JSON lines (LOG_FORMAT=json), the request fields of
`web.middleware.RequestLog` (one line per request, with its id) carried into JSON lines.

Configured in every process that logs: the CLI, and each server worker (see `web.app`), so that
uvicorn's own messages and ours come out through the same handler, in the same format.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from priorizer.config import Settings

# Fields requests add to their log records, carried into JSON lines.
REQUEST_FIELDS = ("request_id", "method", "route", "status", "duration_ms")


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
