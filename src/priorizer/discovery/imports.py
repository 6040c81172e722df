"""URL lists from other tools into the catalog: JSON arrays, JSON lines, CSV or plain lines,
each record at least a `url` (optionally `size_bytes`, `content_type`, `source_page`,
`priority`, `dataset_id`).

A truncated file (a crawler stopped mid-write) gives every complete record, and says how many
bytes at its end could not be read; a file with no complete record gives none.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from priorizer.errors import PriorizerError

FIELDS = ("url", "size_bytes", "content_type", "source_page", "priority", "dataset_id")


class UrlListError(PriorizerError):
    """A list with no complete record, or a record that is not valid."""


@dataclass(frozen=True, slots=True)
class UrlRecord:
    url: str
    size_bytes: int | None = None
    content_type: str | None = None
    source_page: str | None = None
    priority: int | None = None
    dataset_id: str | None = None


@dataclass(slots=True)
class UrlList:
    records: list[UrlRecord] = field(default_factory=list)
    unread_bytes: int = 0  # at the end, after the last complete record


def parse_url_list(data: bytes) -> UrlList:
    text = data.decode("utf-8-sig", errors="replace")
    stripped = text.lstrip()
    if stripped.startswith("["):
        raw, unread = _json_array(stripped)
    elif stripped.startswith("{"):
        raw, unread = _json_lines(stripped)
    else:
        raw, unread = _lines(stripped), 0
    if not raw:
        raise UrlListError("no complete record in the file: nothing imported")
    return UrlList([_record(item, number) for number, item in enumerate(raw, 1)], unread)


def _json_array(text: str) -> tuple[list[Any], int]:
    decoder = json.JSONDecoder()
    items: list[Any] = []
    position = 1  # after "["
    end = position
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            return items, len(text[position:].encode()) if position >= len(text) else 0
        try:
            item, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return items, len(text[position:].encode())
        items.append(item)
        position = end


def _json_lines(text: str) -> tuple[list[Any], int]:
    items: list[Any] = []
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError:
            if index == len(lines) - 1 or not "".join(lines[index + 1 :]).strip():
                return items, len(line.encode())  # the last line, cut short
            raise UrlListError(f"line {index + 1}: not a JSON object") from None
    return items, 0


def _lines(text: str) -> list[Any]:
    first = text.split("\n", 1)[0]
    if "," in first and "url" in [cell.strip().lower() for cell in first.split(",")]:
        rows = list(csv.DictReader(io.StringIO(text)))
        return [
            {k.strip().lower(): v for k, v in row.items() if k and v not in (None, "")}
            for row in rows
        ]
    return [
        {"url": line.strip()}
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def _record(item: Any, number: int) -> UrlRecord:
    if isinstance(item, str):
        item = {"url": item}
    if not isinstance(item, dict):
        raise UrlListError(f"record {number}: not an object with a url")
    url = str(item.get("url") or "").strip()
    if urlsplit(url).scheme not in ("http", "https", "ftp") or not urlsplit(url).netloc:
        raise UrlListError(f"record {number}: url {url!r} is not an http, https or ftp URL")
    return UrlRecord(
        url=url,
        size_bytes=_whole(item.get("size_bytes"), number, "size_bytes", 0, 2**62),
        content_type=_text(item.get("content_type")),
        source_page=_text(item.get("source_page")),
        priority=_whole(item.get("priority"), number, "priority", 1, 10),
        dataset_id=_text(item.get("dataset_id")),
    )


def _whole(value: Any, number: int, name: str, low: int, high: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        whole = int(str(value).strip())
    except ValueError:
        raise UrlListError(f"record {number}: {name} {value!r} is not a whole number") from None
    if not low <= whole <= high:
        raise UrlListError(f"record {number}: {name} {whole} is not between {low} and {high}")
    return whole


def _text(value: Any) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value).strip()[:200]
