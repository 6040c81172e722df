"""DCAT-US (Project Open Data) `data.json` datasets to datasets and assets: pure functions.

v1.1 (a catalog object with `dataset`): each `distribution`'s `downloadURL` is a file, an asset;
an `accessURL` alone is a page (a landing page, an API, a folder) stored as an asset too, and
counted as a page to discover, for discovery to expand into the files behind it. v1.0 (a bare
array of datasets) had no `downloadURL`: its `accessURL`, on the dataset or a distribution, was
the file, and `webService` the page.

What agencies really publish (tests/fixtures/dcat/SOURCES.md): no `byteSize` anywhere, free-text
`format`, non-IANA `mediaType`, `modified` as a year, a date, a datetime with or without a zone,
or a repeating interval (`R/P1D`: updated daily); lone surrogates from Windows-1252 bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from priorizer.catalog.models import url_key
from priorizer.harvest.mapping import (
    MAX_NAME,
    AssetRecord,
    DatasetRecord,
    Mapped,
    asset_url,
    file_format,
    parse_time,
    size_mb,
    tag_names,
)

V1_0 = "1.0"
V1_1 = "1.1"
MAX_ID = 200  # the datasets.id column: longer identifiers are replaced by a digest
MAX_TEXT = 500
NO_URL = "distribution without a URL"
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_YEAR = re.compile(r"^\d{4}$")
_YEAR_MONTH = re.compile(r"^\d{4}-\d{2}$")
_MEDIA_TYPE = re.compile(r"^[a-zA-Z]+/[\w.+-]+(;.*)?$")
_DURATION = re.compile(r"^P(?=\d|T\d)[\d.YMWD]*(T[\d.HMS]+)?$")
# Media types whose subtype does not say the format plainly.
MEDIA_FORMATS = {
    "application/vnd.ms-excel": "XLS",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "XLSX",
    "application/msword": "DOC",
    "application/vnd.google-earth.kmz+xml": "KMZ",
    "application/vnd.google-earth.kml+xml": "KML",
    "application/x-netcdf": "NETCDF",
    "text/plain": "TXT",
    "text/tab-separated-values": "TSV",
}


@dataclass(slots=True)
class DcatMapped:
    """A batch of data.json datasets: what CKAN's mapping gives (`Mapped`), plus the assets
    that are pages to discover (accessURL alone), and the distributions counted."""

    mapped: Mapped = field(default_factory=Mapped)
    pages: set[str] = field(default_factory=set)  # asset ids (URL keys) that are pages
    distributions: int = 0


def map_datasets(items: list[Any], *, version: str, now: datetime) -> DcatMapped:
    """Datasets and assets from data.json datasets; one asset per URL (the last listing it
    describes it; a size known from an earlier one is kept), each dataset once (the last)."""
    out = DcatMapped()
    mapped = out.mapped
    datasets: dict[str, DatasetRecord] = {}
    by_url: dict[str, AssetRecord] = {}
    for item in items:
        dataset = map_dataset(item, now=now)
        if dataset is None:
            mapped.skipped["dataset without an identifier"] += 1
            continue
        datasets.pop(dataset.id, None)
        datasets[dataset.id] = dataset
        for entry in distributions(item, version=version):
            out.distributions += 1
            asset, is_page, why = map_distribution(entry, dataset_id=dataset.id, version=version)
            if asset is None:
                mapped.skipped[why] += 1
                continue
            earlier = by_url.pop(asset.id, None)
            if earlier is not None:
                mapped.shared_urls += 1
                if asset.size_mb is None:
                    asset = dataclasses.replace(asset, size_mb=earlier.size_mb)
            by_url[asset.id] = asset
            (out.pages.add if is_page else out.pages.discard)(asset.id)
    mapped.datasets = list(datasets.values())
    mapped.assets = list(by_url.values())
    return out


def map_dataset(item: Any, *, now: datetime) -> DatasetRecord | None:
    if not isinstance(item, dict):
        return None
    identifier = clean(item.get("identifier"))
    if identifier is None:
        return None
    if len(identifier) > MAX_ID:
        identifier = "sha256:" + hashlib.sha256(identifier.encode()).hexdigest()[:40]
    return DatasetRecord(
        id=identifier,
        name=None,
        title=clean(item.get("title")),
        organization=publisher_name(item.get("publisher")),
        tags=tag_names(keywords(item.get("keyword"))),
        modified_at=parse_modified(item.get("modified"), now=now),
        views=None,
    )


def distributions(item: Any, *, version: str) -> list[Any]:
    """The dataset's distributions; in v1.0, its own accessURL and webService count as one."""
    found = item.get("distribution") if isinstance(item, dict) else None
    entries = list(found) if isinstance(found, list) else []
    if isinstance(found, dict):  # a single distribution not in a list
        entries = [found]
    if version == V1_0 and isinstance(item, dict):
        for key in ("accessURL", "webService"):
            if clean(item.get(key)):
                entries.append({key: item[key], "format": item.get("format")})
    return entries


def map_distribution(
    entry: Any, *, dataset_id: str, version: str
) -> tuple[AssetRecord | None, bool, str]:
    """The asset a distribution names, whether it is a page to discover, or why there is none."""
    if not isinstance(entry, dict):
        return None, False, "distribution is not an object"
    candidates: tuple[tuple[str, bool], ...]
    if version == V1_0:
        candidates = (("accessURL", False), ("downloadURL", False), ("webService", True))
    else:
        candidates = (("downloadURL", False), ("accessURL", True))
    why = NO_URL
    for key, is_page in candidates:
        value = entry.get(key)
        if value is None or value == "":
            continue
        url, reason = asset_url(clean(value))
        if url is None:
            why = reason if why == NO_URL else why  # the first unusable URL says why
            continue
        name = clean(entry.get("title")) or url.rstrip("/").rsplit("/", 1)[-1] or url
        asset = AssetRecord(
            id=url_key(url),
            url=url,
            name=name[:MAX_NAME],
            format=format_of(entry.get("format"), entry.get("mediaType")),
            size_mb=size_mb(entry.get("byteSize")),
            dataset_id=dataset_id,
        )
        return asset, is_page, ""
    return None, False, why


def format_of(text: Any, media_type: Any) -> str | None:
    """`format` when given ('csv', 'CSV' → CSV), else the media type's (text/csv → CSV). A
    format that is a media type (v1.0's were) is read as one."""
    given = clean(text)
    if given is not None and not _MEDIA_TYPE.match(given):
        return file_format(given)
    kind = given or clean(media_type)
    if kind is None:
        return None
    kind = kind.split(";")[0].strip().lower()
    if kind in MEDIA_FORMATS:
        return MEDIA_FORMATS[kind]
    subtype = kind.rsplit("/", 1)[-1].split("+")[0].removeprefix("x-")
    return file_format(subtype)


def publisher_name(value: Any) -> str | None:
    """v1.1: an object with `name`; v1.0: a string."""
    if isinstance(value, dict):
        value = value.get("name")
    name = clean(value)
    return name[:MAX_TEXT] if name else None


def keywords(value: Any) -> list[str]:
    """`keyword`: an array of strings, or (some catalogs) one string of comma-separated words."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return []
    return [word[:MAX_TEXT] for word in (clean(item) for item in value) if word]


def parse_modified(value: Any, *, now: datetime) -> datetime | None:
    """`modified` as an instant (UTC). A date is its midnight; a year or a month its first day;
    an interval `start/end` its end, `start/duration` its start; a repeating interval (`R/P1D`:
    the dataset changes every day) the harvest's time, since it is as fresh as it gets."""
    text = clean(value)
    if text is None:
        return None
    if text.upper().startswith("R"):
        parts = text.split("/")
        return now if re.fullmatch(r"R\d*", parts[0], re.IGNORECASE) and len(parts) > 1 else None
    if "/" in text:
        start, _, end = text.partition("/")
        return _instant(start) if _DURATION.match(end.upper()) else _instant(end)
    return _instant(text)


def _instant(text: str) -> datetime | None:
    text = text.strip()
    if _YEAR.match(text):
        text += "-01-01"
    elif _YEAR_MONTH.match(text):
        text += "-01"
    moment = parse_time(text)
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def clean(value: Any) -> str | None:
    """A string without surrounding space or lone surrogates (Windows-1252 bytes a catalog
    served inside UTF-8; no database takes them); None for anything else or nothing."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = _SURROGATE.sub("\ufffd", value)
    return value or None


def catalog_version(first_byte: bytes, conforms_to: str | None = None) -> str:
    """v1.0 catalogs are a bare array of datasets; v1.1 an object (with `conformsTo`)."""
    if first_byte == b"[":
        return V1_0
    if conforms_to and "v1.0" in conforms_to:
        return V1_0
    return V1_1
