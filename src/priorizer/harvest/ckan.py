"""A client for CKAN's Action API: `package_search`, with retries.

httpx (already what Priorizer speaks HTTP with) and tenacity (retries with exponential backoff
and jitter) rather than the CKAN project's `ckanapi`: ckanapi's RemoteCKAN has no retries or
backoff of its own, sets one timeout for everything, and would add `requests` beside httpx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from tenacity import (
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity import Retrying as _Retrying

log = logging.getLogger(__name__)

ACTION_PATH = "/api/3/action"
# Most portals cap `rows` at 1,000 (CKAN's ckan.search.rows_max default).
MAX_ROWS = 1000


class CkanError(Exception):
    """The portal refused the request, or answered with something that is not CKAN's.
    `retries`: how many times the request was tried again before this (it crosses the
    harvest's process boundary with the error: pickling keeps instance attributes)."""

    retries: int = 0


class _Transient(Exception):
    """Worth trying again: a timeout, a dropped connection, 429 or 5xx, a garbled answer."""


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """What a client is made of: enough to make the same client in another process."""

    portal: str
    timeout_seconds: float = 30.0
    attempts: int = 6
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class Page:
    count: int | None
    results: list[Any]


def action_url(portal: str) -> str:
    """The Action API's root for a portal given as its site URL or as its API URL."""
    url = portal.strip().rstrip("/")
    for suffix in (ACTION_PATH, "/api/3", "/api"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
            break
    return url + ACTION_PATH


class CkanClient:
    """Calls one portal. Transient failures are retried `attempts` times in all, waiting
    `backoff_seconds` doubling (with jitter) up to `max_backoff_seconds`; `on_retry` hears of
    each one."""

    def __init__(
        self,
        portal: str,
        *,
        timeout_seconds: float = 30.0,
        attempts: int = 6,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.options = ClientOptions(
            portal, timeout_seconds, attempts, backoff_seconds, max_backoff_seconds
        )
        self.base = action_url(portal)
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.on_retry = on_retry
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds),
            headers={"User-Agent": "priorizer-harvester", "Accept": "application/json"},
            follow_redirects=True,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> CkanClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def search(
        self,
        *,
        fq: list[str],
        q: str | None,
        sort: str,
        rows: int,
        start: int = 0,
        fields: str | None = None,
    ) -> Page:
        params: dict[str, Any] = {"q": q or "*:*", "sort": sort, "rows": rows, "start": start}
        if fq:
            params["fq"] = " ".join(fq)
        if fields:
            params["fl"] = fields
        result = self.call("package_search", params)
        if isinstance(result, list):  # a few portals answer with the list alone
            return Page(None, result)
        if not isinstance(result, dict) or not isinstance(result.get("results"), list):
            raise CkanError("package_search answered without a list of results")
        count = result.get("count")
        return Page(count if isinstance(count, int) else None, result["results"])

    def call(self, action: str, params: dict[str, Any]) -> Any:
        """The action's `result`, once it came back (retrying transient failures)."""
        retries = 0

        def before_retry(state: RetryCallState) -> None:
            nonlocal retries
            retries += 1
            self._retrying(state)

        retrying = _Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(
                multiplier=self.backoff_seconds,
                max=self.max_backoff_seconds,
                jitter=self.backoff_seconds,
            ),
            retry=retry_if_exception_type(_Transient),
            before_sleep=before_retry,
            reraise=True,
        )
        try:
            return retrying(self._call_once, action, params)
        except _Transient as error:
            failed = CkanError(f"{action} failed {self.attempts} times; last: {error}")
            failed.retries = retries
            raise failed from error
        except CkanError as error:  # refused, possibly after transient failures
            error.retries = retries
            raise

    def _retrying(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "CKAN %s: %s; trying again (attempt %d)", self.base, error, state.attempt_number
        )
        if self.on_retry is not None:
            self.on_retry(str(error))

    def _call_once(self, action: str, params: dict[str, Any]) -> Any:
        try:
            response = self.http.get(f"{self.base}/{action}", params=params)
        except httpx.TimeoutException as error:
            raise _Transient(f"timed out ({type(error).__name__})") from error
        except httpx.TransportError as error:
            raise _Transient(f"connection failed ({type(error).__name__})") from error
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code}")
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as error:
            if response.is_success:
                raise _Transient("the answer is not JSON") from error
            raise CkanError(f"{action}: HTTP {response.status_code}") from error
        if not isinstance(body, dict):
            raise _Transient("the answer is not a CKAN envelope")
        if not response.is_success or body.get("success") is False:
            raise CkanError(f"{action}: HTTP {response.status_code}: {_message(body)}")
        if "result" not in body:
            raise _Transient("the answer has no result")
        return body["result"]


def _message(body: dict[str, Any]) -> str:
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error.get("__type") or error)[:300]
    return str(error)[:300]
