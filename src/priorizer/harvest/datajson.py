"""Reading a DCAT-US `data.json` as a stream: one dataset at a time, never the whole file.

Agency catalogs run to hundreds of megabytes; ijson (its C backend, yajl) parses the bytes as
they come from httpx, so memory holds one dataset and a buffer whatever the catalog's size. The
opening request is retried (timeouts, dropped connections, 429, 5xx) like CKAN's; a connection
lost mid-stream stops the run, which the next harvest of the source starts over.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import ijson
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from priorizer.harvest.dcat import catalog_version

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024


class DataJsonError(Exception):
    """The catalog could not be read: refused, unreachable after retries, or not a data.json."""

    retries: int = 0


class _Transient(Exception):
    pass


@dataclass(frozen=True, slots=True)
class DataJsonOptions:
    url: str
    timeout_seconds: float = 30.0
    attempts: int = 6
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0


class _Bytes:
    """A file-like `read` over an iterator of chunks, as ijson wants, giving back first the
    bytes read ahead (to tell v1.0 from v1.1). What yajl refuses, and real catalogs hold, is
    replaced by U+FFFD on the way: bytes that are not UTF-8, and escapes of lone surrogates
    (`\\udc92`: Windows-1252 bytes a recorder escaped)."""

    def __init__(self, chunks: Iterator[bytes], head: bytes) -> None:
        self._chunks = chunks
        self._head = head
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._tail = ""  # the end of the last chunk, held back while an escape may span it
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson asks for nothing first, to learn that these are bytes
            return b""
        while True:
            if self._head:
                chunk, self._head = self._head, b""
            else:
                chunk = next(self._chunks, b"")
            self.read_bytes += len(chunk)
            text = self._tail + self._decoder.decode(chunk, final=not chunk)
            cut = len(text) if not chunk else _safe_end(text)
            self._tail = text[cut:]
            if cut or not chunk:
                text = text[:cut]
                if "\\ud" in text or "\\uD" in text:  # rare: most catalogs have none
                    text = _LONE_SURROGATE.sub(_replace_lone, text)
                return text.encode("utf-8")


# A run of backslashes, a \\u escape of a surrogate, and the low half that may follow it.
_LONE_SURROGATE = re.compile(
    r"(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})((?:\\u[dD][c-fC-F][0-9a-fA-F]{2})?)"
)


def _replace_lone(match: re.Match[str]) -> str:
    slashes, unit, low = match.groups()
    if len(slashes) % 2 == 0:  # an escaped backslash, then plain text
        return match.group(0)
    is_high = unit[1].lower() in "89ab"
    if is_high and low:  # a pair: a character beyond the BMP
        return match.group(0)
    replaced = slashes[:-1] + "\\ufffd"
    return replaced + ("\\ufffd" if low else "")


def _safe_end(text: str) -> int:
    """Where `text` may be cut without splitting an escape: before a backslash in its last
    twelve characters (a surrogate pair's two escapes), else its end."""
    slash = text.rfind("\\", max(0, len(text) - 12))
    return slash if slash >= 0 else len(text)


@contextmanager
def open_catalog(
    options: DataJsonOptions, *, on_retry: Callable[[str], None] | None = None
) -> Iterator[tuple[str, Iterator[Any]]]:
    """The catalog's version ("1.0" or "1.1") and its datasets, read as they arrive."""
    with httpx.Client(
        timeout=httpx.Timeout(options.timeout_seconds),
        headers={"User-Agent": "priorizer-harvester", "Accept": "application/json"},
        follow_redirects=True,
    ) as client:
        response = _open(client, options, on_retry)
        try:
            chunks = response.iter_bytes(CHUNK_BYTES)
            head = _first_bytes(chunks)
            start = head.lstrip()[:1]
            if start not in (b"{", b"["):
                raise DataJsonError(f"{options.url} is not a data.json catalog (not JSON)")
            version = catalog_version(start)
            prefix = "item" if start == b"[" else "dataset.item"
            stream = _Bytes(chunks, head)
            yield version, _datasets(stream, prefix, options.url)
        finally:
            response.close()


def read_file(path: str) -> tuple[str, Iterator[Any], Any]:
    """A local data.json's version, datasets and open file (for tools and tests)."""
    handle = open(path, "rb")  # noqa: SIM115 (the caller closes it)
    head = handle.read(CHUNK_BYTES)
    start = head.lstrip()[:1]
    prefix = "item" if start == b"[" else "dataset.item"
    stream = _Bytes(iter(lambda: handle.read(CHUNK_BYTES), b""), head)
    return catalog_version(start), _datasets(stream, prefix, path), handle


def _datasets(stream: _Bytes, prefix: str, url: str) -> Iterator[Any]:
    try:
        yield from ijson.items(stream, prefix, use_float=True)
    except (ijson.JSONError, UnicodeDecodeError) as error:
        raise DataJsonError(f"{url}: the catalog is not valid JSON: {error}") from error
    except httpx.TransportError as error:
        raise DataJsonError(f"{url}: the connection was lost while reading ({error})") from error


def _first_bytes(chunks: Iterator[bytes]) -> bytes:
    head = b""
    for chunk in chunks:
        head += chunk
        if head.strip():
            break
    return head


def _open(
    client: httpx.Client, options: DataJsonOptions, on_retry: Callable[[str], None] | None
) -> httpx.Response:
    retries = 0

    def before_retry(state: Any) -> None:
        nonlocal retries
        retries += 1
        error = state.outcome.exception() if state.outcome else None
        log.warning("data.json %s: %s; trying again", options.url, error)
        if on_retry is not None:
            on_retry(str(error))

    retrying = Retrying(
        stop=stop_after_attempt(options.attempts),
        wait=wait_exponential_jitter(
            multiplier=options.backoff_seconds,
            max=options.max_backoff_seconds,
            jitter=options.backoff_seconds,
        ),
        retry=retry_if_exception_type(_Transient),
        before_sleep=before_retry,
        reraise=True,
    )
    try:
        return retrying(_open_once, client, options.url)
    except _Transient as error:
        failed = DataJsonError(f"{options.url}: failed {options.attempts} times; last: {error}")
        failed.retries = retries
        raise failed from error


def _open_once(client: httpx.Client, url: str) -> httpx.Response:
    try:
        response = client.send(client.build_request("GET", url), stream=True)
    except httpx.TimeoutException as error:
        raise _Transient(f"timed out ({type(error).__name__})") from error
    except httpx.TransportError as error:
        raise _Transient(f"connection failed ({type(error).__name__})") from error
    if response.status_code == 429 or response.status_code >= 500:
        response.close()
        raise _Transient(f"HTTP {response.status_code}")
    if not response.is_success:
        response.close()
        raise DataJsonError(f"{url}: HTTP {response.status_code}")
    return response
