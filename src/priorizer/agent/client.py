"""The Priorizer server's node API, as the agent calls it: each call retried with backoff while
the server is unreachable, busy (429, honouring Retry-After) or failing (5xx)."""

from __future__ import annotations

import threading
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

USER_AGENT = "priorizer-node/0.1"
# How long a call keeps trying before the agent gives up on it for now (it tries again later).
ATTEMPTS = 8
MAX_WAIT_SECONDS = 30.0


class ServerError(Exception):
    """The server refused the call (a 4xx other than 429): `status` and its `detail`."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class ServerUnavailable(Exception):
    """The server did not answer usefully after every retry."""


class _Retry(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome is not None else None
    if isinstance(error, _Retry) and error.retry_after is not None:
        return min(error.retry_after, MAX_WAIT_SECONDS)
    return float(wait_exponential(multiplier=0.5, max=MAX_WAIT_SECONDS)(state))


class ServerClient:
    def __init__(
        self,
        base_url: str,
        *,
        node_id: str,
        token: str | None = None,
        timeout: float = 30.0,
        attempts: int = ATTEMPTS,
        interrupt: threading.Event | None = None,
    ) -> None:
        headers = {"User-Agent": f"{USER_AGENT} ({node_id})"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.node_id = node_id
        self.attempts = attempts
        # Set when the agent stops: waits between tries end at once.
        self.interrupt = interrupt or threading.Event()
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    # --- the calls --------------------------------------------------------------------------

    def allocate(self, *, free_space_gb: float) -> list[dict[str, Any]]:
        body = {"free_space_gb": free_space_gb, "node_id": self.node_id}
        return list(self._call("POST", "/allocate", json=body))

    def complete(
        self,
        asset_id: str,
        *,
        checksum_sha256: str,
        size_bytes: int,
        magnet_link: str | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "asset_id": asset_id,
            "node_id": self.node_id,
            "checksum_sha256": checksum_sha256,
            "size_mb": max(size_bytes, 1) / (1 << 20),
            "size_bytes": size_bytes,
        }
        if magnet_link:
            body["magnet_link"] = magnet_link
        return dict(self._call("POST", "/complete", json=body))

    def fail(self, asset_id: str, *, code: str, reason: str) -> dict[str, Any]:
        body = {
            "asset_id": asset_id,
            "node_id": self.node_id,
            "reason_code": code,
            "reason": f"{code}: {reason}"[:2000],
        }
        return dict(self._call("POST", "/fail", json=body))

    def renew(self, asset_ids: list[str]) -> dict[str, Any]:
        body = {"node_id": self.node_id, "asset_ids": asset_ids}
        return dict(self._call("POST", "/renew", json=body))

    def release(self, asset_id: str) -> None:
        self._call("POST", "/release", json={"asset_id": asset_id, "node_id": self.node_id})

    def discard(self, asset_id: str, *, reason: str) -> dict[str, Any]:
        body = {"asset_id": asset_id, "node_id": self.node_id, "reason": reason[:2000]}
        return dict(self._call("POST", "/discard", json=body))

    def leases(self) -> list[dict[str, Any]]:
        """The node's open leases, with what is needed to fetch them; [] for an unknown node."""
        try:
            return list(self._call("GET", f"/nodes/{self.node_id}/leases"))
        except ServerError as error:
            if error.status == 404:
                return []
            raise

    # --- plumbing ---------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=_wait,
                retry=retry_if_exception_type(_Retry),
                sleep=self._sleep,
                reraise=True,
            ):
                with attempt:
                    return self._once(method, path, **kwargs)
        except _Retry as error:
            raise ServerUnavailable(f"{method} {path}: {error}") from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _sleep(self, seconds: float) -> None:
        self.interrupt.wait(seconds)

    def _once(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise _Retry(f"{type(error).__name__}: {error}") from error
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retry(f"{response.status_code}", _retry_after(response))
        if response.status_code >= 400:
            raise ServerError(response.status_code, _detail(response))
        return response.json()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:500]
    return detail if isinstance(detail, str) else str(detail)[:500]
