"""A small CKAN-compatible Action API server for tests (standard library only).

    with CkanPortal([package("a"), package("b")]) as portal:
        httpx.get(f"{portal.base_url}/api/3/action/package_search", params={"rows": 1})

It serves, on 127.0.0.1 and a free port, from `portal.datasets` (a dict by id that tests may change
between requests, holding `portal.lock`):

- `package_search`: `q`, `fq`, `rows`, `start`, `sort`, `fl`, as described in `_search` below.
- `package_show?id=` (id or name), `status_show`.
- any other action: HTTP 400 with the error envelope.

Actions answer at `/api/3/action/<name>` and `/api/action/<name>`, to GET with query parameters or
POST with a JSON object body. Every request is appended to `portal.requests` as
`{"action", "params", "status"}` (`portal.searches()`: the params of the package_search ones).
An exception while answering (a bug, or an assertion in a test's `on_search`) is answered 500 and
kept in `portal.errors`.

Like Solr behind CKAN, `metadata_modified` is compared and sorted at millisecond precision, so two
datasets modified in the same millisecond tie even when their microseconds differ. Ties in any sort
are broken by `id` ascending, so every order is total and repeatable.

Faults, for `package_search` only, each consumed by the next matching requests:
`stall_next` sleeps first (a client with a shorter timeout gives up), then `fail_next` answers an
error status, else `garble_next` answers 200 with a truncated, non-JSON body.

Misbehaviour, as some CKAN-compatible APIs and proxies show it: `ignores` holds the
`package_search` parameters the portal acts as if it had not been sent (`"fq"`, `"sort"`,
`"start"`); `count` then counts what the remaining parameters match.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CKAN_VERSION = "2.10.4"
MAX_ROWS = 1000  # CKAN's default `ckan.search.rows_max`
DEFAULT_SORT = "score desc, metadata_modified desc"
GARBLED = b'{"help": "x", "success": true, "result": {"count": 3, "results": [{"id'  # cut short
NOT_FOUND = {"message": "Not found", "__type": "Not Found Error"}

ERROR_TYPES = {
    400: "Bad Request",
    403: "Authorization Error",
    404: "Not Found Error",
    409: "Validation Error",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

# One fq clause: an optional +/-, a field, then a range, a quoted value or a bare word.
FQ_CLAUSE = re.compile(
    r'\s*(?:AND\s+)?(?P<sign>[+-]?)(?P<field>\w+):(?P<value>[\[{][^\]}]*[\]}]|"[^"]*"|\S+)\s*'
)
RANGE = re.compile(
    r"^(?P<low_bracket>[\[{])\s*(?P<low>\S+)\s+TO\s+(?P<high>\S+)\s*(?P<high_bracket>[\]}])$"
)
DATE_FIELDS = {"metadata_modified", "metadata_created"}
SORT_FIELDS = {"metadata_modified", "metadata_created", "id", "name", "title", "title_string"}


class SearchQueryError(Exception):
    """A query CKAN would refuse: answered 400 "Search Query Error"."""


class ValidationError(Exception):
    """A parameter CKAN would refuse: answered 409 "Validation Error" with `{field: [message]}`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.errors = {field: [message]}


def solr_time(value: object) -> datetime | None:
    """An ISO timestamp as Solr holds it: naive UTC, cut to milliseconds; None if unreadable."""
    if not isinstance(value, str):
        return None
    text = value.strip().removesuffix("Z").removesuffix("z")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


class CkanPortal:
    """A CKAN portal in a daemon thread; see the module docstring."""

    def __init__(self, datasets: Iterable[dict] = (), *, help_field: bool = True) -> None:
        self.datasets: dict[str, dict] = {dataset["id"]: dataset for dataset in datasets}
        self.help_field = help_field
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.errors: list[Exception] = []  # exceptions raised while answering (answered 500)
        self.on_search: Callable[[dict], None] | None = None
        self.ignores: set[str] = set()  # package_search parameters treated as absent
        self.base_url = ""
        self._fail: list[int] = []  # one status per request still to fail
        self._stall: list[float] = []  # one delay per request still to stall
        self._garble = 0
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> CkanPortal:
        portal = self

        class Handler(_Handler):
            pass

        Handler.portal = portal
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="ckan-portal", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes stalled requests so the server can close promptly
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> CkanPortal:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- test controls ---------------------------------------------------------------------

    def add(self, *datasets: dict) -> None:
        with self.lock:
            for dataset in datasets:
                self.datasets[dataset["id"]] = dataset

    def remove(self, *ids: str) -> None:
        with self.lock:
            for dataset_id in ids:
                del self.datasets[dataset_id]

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        with self.lock:
            self._fail.extend([status] * count)

    def stall_next(self, count: int = 1, seconds: float = 5.0) -> None:
        with self.lock:
            self._stall.extend([seconds] * count)

    def garble_next(self, count: int = 1) -> None:
        with self.lock:
            self._garble += count

    def searches(self) -> list[dict]:
        """The params of every package_search request so far, in order."""
        with self.lock:
            return [r["params"] for r in self.requests if r["action"] == "package_search"]

    # --- answering -------------------------------------------------------------------------

    def help_url(self, action: str) -> str:
        return f"{self.base_url}/api/3/action/help_show?name={action}"

    def envelope(self, action: str, **fields: Any) -> dict:
        body: dict[str, Any] = {"help": self.help_url(action)} if self.help_field else {}
        body.update(fields)
        return body

    def error(self, action: str, status: int, error: dict) -> tuple[int, bytes]:
        return status, _json(self.envelope(action, success=False, error=error))

    def answer(self, action: str, params: dict) -> tuple[int, bytes]:
        """The status and body for one action call (run in a request thread)."""
        if action == "package_search":
            return self._answer_search(params)
        with self.lock:
            if action == "package_show":
                return self._show(params)
            if action == "status_show":
                result = {
                    "site_title": "Test CKAN portal",
                    "site_url": self.base_url,
                    "site_description": "",
                    "ckan_version": CKAN_VERSION,
                    "error_emails_to": None,
                    "locale_default": "en",
                    "extensions": ["stats", "text_view"],
                }
                return 200, _json(self.envelope(action, success=True, result=result))
        message = f"Bad request - Action name not known: {action}"
        return self.error(action, 400, {"message": message, "__type": "Bad Request"})

    def _answer_search(self, params: dict) -> tuple[int, bytes]:
        if self.on_search is not None:
            self.on_search(params)
        with self.lock:
            stall = self._stall.pop(0) if self._stall else 0.0
        if stall:
            self._stopping.wait(stall)
        with self.lock:
            if self._fail:
                status = self._fail.pop(0)
                message = ERROR_TYPES.get(status, "Error")
                return self.error("package_search", status, {"message": message, "__type": message})
            if self._garble:
                self._garble -= 1
                return 200, GARBLED
            try:
                result = self._search(params)
            except ValidationError as error:
                details = {**error.errors, "__type": "Validation Error"}
                return self.error("package_search", 409, details)
            except SearchQueryError as error:
                message = f"Search Query is invalid: {error.args!r}"
                return self.error(
                    "package_search", 400, {"message": message, "__type": "Search Query Error"}
                )
            return 200, _json(self.envelope("package_search", success=True, result=result))

    def _show(self, params: dict) -> tuple[int, bytes]:
        wanted = params.get("id")
        if not wanted:
            return self.error(
                "package_show", 409, {"id": ["Missing value"], "__type": "Validation Error"}
            )
        for dataset in self.datasets.values():
            if wanted in (dataset.get("id"), dataset.get("name")):
                return 200, _json(self.envelope("package_show", success=True, result=dataset))
        return self.error("package_show", 404, NOT_FOUND)

    def _search(self, params: dict) -> dict:
        """package_search over `self.datasets` (the caller holds the lock).

        - `q`: case-insensitive substring of title, name, notes or a tag name; `*:*` or empty = all.
        - `fq`: clauses joined by spaces (AND); each `field:value` with an optional leading `+`:
          ranges `[low TO high]`, `{low TO high}` or mixed, `*` open, on `metadata_modified` and
          `metadata_created` (as Solr dates) or any other field (as strings, e.g. `id`, `name`);
          exact values on `organization`, `groups`, `tags`, `res_format`, `dataset_type` and any
          top-level string field. Anything else (negation, OR, parentheses): Search Query Error.
        - `rows` (default 10, clamped to 1000), `start` (default 0): natural numbers, else 409.
        - `sort`: comma-separated `field asc|desc`; `score` is ignored; ties go by `id asc`.
        - `fl`: comma- or space-separated fields; each result then holds only those it has.
        """
        params = {k: v for k, v in params.items() if k not in self.ignores}
        rows = min(_natural(params, "rows", 10), MAX_ROWS)
        start = _natural(params, "start", 0)
        sort = str(params.get("sort") or DEFAULT_SORT)
        matches = [d for d in self.datasets.values() if _matches_q(d, params.get("q"))]
        for clause in _fq_clauses(params.get("fq")):
            matches = [d for d in matches if clause(d)]
        for field, descending in reversed(_sort_keys(sort)):
            matches.sort(key=functools.partial(_sort_value, field=field), reverse=descending)
        page = matches[start : start + rows]
        fields = _field_list(params.get("fl"))
        if fields:
            page = [{f: d[f] for f in fields if f in d} for d in page]
        return {
            "count": len(matches),
            "facets": {},
            "results": page,
            "sort": sort,
            "search_facets": {},
        }


class _Handler(BaseHTTPRequestHandler):
    portal: CkanPortal
    server_version = "CkanPortal/1"

    def do_GET(self) -> None:
        self._handle(body=None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(body=self.rfile.read(length))

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def _handle(self, body: bytes | None) -> None:
        portal = self.portal
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        params: dict[str, Any] = {name: values[0] for name, values in query.items()}
        match = re.fullmatch(r"/api(?:/3)?/action/([^/]+)/?", url.path)
        action = match.group(1) if match else None
        decoded = _json_object(body) if body else {}
        if action is None:
            status, payload = 404, b"Not Found"
        elif decoded is None:  # CKAN answers a bare JSON string here
            status, payload = 400, _json("Bad request - JSON Error: the body is not a JSON object")
        else:
            params.update(decoded)
            try:
                status, payload = portal.answer(action, params)
            except Exception as error:  # a bug here or in a test's on_search: keep it visible
                portal.errors.append(error)
                details = {"message": f"test portal: {error!r}", "__type": "Internal Server Error"}
                status, payload = portal.error(action, 500, details)
        with portal.lock:
            portal.requests.append({"action": action, "params": params, "status": status})
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up (a timeout test); nothing left to do


# --- helpers -----------------------------------------------------------------------------------


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _json_object(body: bytes) -> dict | None:
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _natural(params: dict, name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(name, "Invalid integer") from None
    if number < 0:
        raise ValidationError(name, "Must be a natural number")
    return number


def _matches_q(dataset: dict, q: object) -> bool:
    if not q or q == "*:*":
        return True
    needle = str(q).lower()
    tags = [t.get("name") or "" for t in dataset.get("tags") or []]
    texts = [dataset.get("title"), dataset.get("name"), dataset.get("notes"), *tags]
    return any(needle in text.lower() for text in texts if isinstance(text, str))


def _fq_clauses(fq: object) -> list[Callable[[dict], bool]]:
    """`fq` as a list of predicates, one per clause (all must hold)."""
    text = str(fq or "").strip()
    clauses: list[Callable[[dict], bool]] = []
    position = 0
    while position < len(text):
        match = FQ_CLAUSE.match(text, position)
        if match is None or match.group("sign") == "-":
            raise SearchQueryError(f"unsupported fq: {text[position:]!r}")
        clauses.append(_clause(match.group("field"), match.group("value")))
        position = match.end()
    return clauses


def _clause(field: str, value: str) -> Callable[[dict], bool]:
    ranged = RANGE.match(value)
    if ranged:
        return _range_clause(field, ranged)
    if value.startswith(("[", "{", "(")):
        raise SearchQueryError(f"unsupported fq value: {field}:{value}")
    value = value.strip('"')
    return lambda dataset: value in _field_values(dataset, field)


def _range_clause(field: str, ranged: re.Match[str]) -> Callable[[dict], bool]:
    convert: Callable[[object], Any] = solr_time if field in DATE_FIELDS else _string_or_none
    low = None if ranged["low"] == "*" else convert(ranged["low"])
    high = None if ranged["high"] == "*" else convert(ranged["high"])
    if (ranged["low"] != "*" and low is None) or (ranged["high"] != "*" and high is None):
        raise SearchQueryError(f"Invalid range: {field}:{ranged.group(0)}")
    low_inclusive = ranged["low_bracket"] == "["
    high_inclusive = ranged["high_bracket"] == "]"

    def check(dataset: dict) -> bool:
        value = convert(dataset.get(field))
        if value is None:
            return False
        if low is not None and (value < low if low_inclusive else value <= low):
            return False
        return not (high is not None and (value > high if high_inclusive else value >= high))

    return check


def _string_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _field_values(dataset: dict, field: str) -> list[str]:
    """The values an exact fq clause on `field` compares against."""
    if field == "organization":
        name = (dataset.get("organization") or {}).get("name")
        return [name] if isinstance(name, str) else []
    if field in ("groups", "tags"):
        return [item.get("name") for item in dataset.get(field) or [] if item.get("name")]
    if field == "res_format":
        return [r.get("format") for r in dataset.get("resources") or [] if r.get("format")]
    if field == "dataset_type":
        field = "type"
    value = dataset.get(field)
    return [str(value)] if isinstance(value, str | int | bool) else []


def _sort_keys(sort: str) -> list[tuple[str, bool]]:
    """`sort` as (field, descending) pairs, most significant first, ending with `id asc`."""
    keys: list[tuple[str, bool]] = []
    for part in sort.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) != 2 or words[1].lower() not in ("asc", "desc"):
            raise SearchQueryError(f"Can't determine a sort order from: {part!r}")
        field, direction = words[0], words[1].lower()
        if field == "score":
            continue  # every dataset scores the same here
        if field not in SORT_FIELDS:
            raise SearchQueryError(f"can not sort on undefined field: {field}")
        keys.append((field, direction == "desc"))
    if not any(field == "id" for field, _ in keys):
        keys.append(("id", False))
    return keys


def _sort_value(dataset: dict, field: str) -> Any:
    """A sort key that never compares None with a value: missing values sort first ascending."""
    if field in DATE_FIELDS:
        value = solr_time(dataset.get(field))
        return (value is not None, value or datetime.min)
    if field == "title_string":
        field = "title"
    value = dataset.get(field)
    return (isinstance(value, str), value if isinstance(value, str) else "")


def _field_list(fl: object) -> list[str]:
    if isinstance(fl, list):
        return [str(f) for f in fl]
    return [f for f in re.split(r"[\s,]+", str(fl or "")) if f]
