"""CKAN packages to datasets and assets: pure functions, no I/O.

Portals send sizes as numbers, strings, empty or junk; URLs of every scheme, or none; fields
missing or of the wrong type. Whatever cannot be read is unknown (never zero), and every
resource that cannot become an asset is counted by reason, never silently dropped.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from priorizer.catalog.models import url_key

ASSET_SCHEMES = frozenset({"http", "https", "ftp"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An http(s) or ftp URL whose host is plain letters, digits, dots and dashes (with a port).
_PLAIN_URL = re.compile(r"(?i)(?:https?|ftp)://[a-z0-9.-]*[a-z0-9](?::[0-9]{1,5})?(?:[/?#]|$)")
BYTES_PER_MB = 1024 * 1024
# Larger than any single file a portal really serves (1 PiB): a size past it is junk.
MAX_SIZE_BYTES = 1024**5
MAX_NAME = 500
MAX_FORMAT = 100


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    id: str
    name: str | None
    title: str | None
    organization: str | None
    tags: tuple[str, ...]
    modified_at: datetime | None
    views: int | None


@dataclass(frozen=True, slots=True)
class AssetRecord:
    id: str  # the URL's key: one asset per URL, whichever datasets list it
    url: str
    name: str
    format: str | None
    size_mb: float | None
    dataset_id: str


@dataclass(slots=True)
class Mapped:
    datasets: list[DatasetRecord] = field(default_factory=list)
    assets: list[AssetRecord] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # resources that are not assets, by why
    shared_urls: int = 0  # resources whose URL another resource of the page listed too


def map_packages(packages: list[Any]) -> Mapped:
    """Datasets and assets from CKAN packages. A URL listed by several resources is one asset,
    described by the last resource that lists it (as a later page's would overwrite it), with
    the last size known: a listing without a size does not forget one."""
    mapped = Mapped()
    by_url: dict[str, AssetRecord] = {}
    for package in packages:
        dataset = map_dataset(package)
        if dataset is None:
            mapped.skipped["package without an id"] += 1
            continue
        mapped.datasets.append(dataset)
        resources = package.get("resources")
        if not isinstance(resources, list):
            continue
        for resource in resources:
            asset, why = map_resource(resource, dataset_id=dataset.id)
            if asset is None:
                mapped.skipped[why] += 1
            else:
                earlier = by_url.pop(asset.id, None)  # re-inserted last: dicts keep order
                if earlier is not None:
                    mapped.shared_urls += 1
                    if asset.size_mb is None:
                        asset = dataclasses.replace(asset, size_mb=earlier.size_mb)
                by_url[asset.id] = asset
    mapped.assets = list(by_url.values())
    return mapped


def map_dataset(package: Any) -> DatasetRecord | None:
    if not isinstance(package, dict) or not _text(package.get("id")):
        return None
    return DatasetRecord(
        id=_text(package["id"]) or "",
        name=_text(package.get("name")),
        title=_text(package.get("title")),
        organization=organization_name(package.get("organization")),
        tags=tag_names(package.get("tags")),
        modified_at=parse_time(package.get("metadata_modified")),
        views=views(package.get("tracking_summary")),
    )


def map_resource(resource: Any, *, dataset_id: str) -> tuple[AssetRecord | None, str]:
    """The asset a resource describes, or None and why it is not one."""
    if not isinstance(resource, dict):
        return None, "resource is not an object"
    url, why = asset_url(resource.get("url"))
    if url is None:
        return None, why
    name = _text(resource.get("name")) or url.rstrip("/").rsplit("/", 1)[-1] or url
    return (
        AssetRecord(
            id=url_key(url),
            url=url,
            name=name[:MAX_NAME],
            format=file_format(resource.get("format")),
            size_mb=size_mb(resource.get("size")),
            dataset_id=dataset_id,
        ),
        "",
    )


def asset_url(value: Any) -> tuple[str | None, str]:
    """An http(s) or ftp URL with a host, spaces escaped; or None and why not."""
    if not isinstance(value, str) or not value.strip():
        return None, "no URL"
    url = value.strip().replace(" ", "%20")
    if _CONTROL.search(url):  # clients refuse them (URL parsers silently drop some)
        return None, "URL with control characters"
    if _PLAIN_URL.match(url):  # the usual case, without parsing the whole URL
        return url, ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None, "malformed URL"
    scheme = parts.scheme.lower()
    if not scheme:
        return None, "relative URL"
    if scheme not in ASSET_SCHEMES:
        return None, f"{scheme}: URL"
    if not parts.hostname:
        return None, "URL without a host"
    return url, ""


def size_mb(value: Any) -> float | None:
    """CKAN's `size` (bytes) in MB; None (unknown) for anything that is not a plausible size:
    missing, empty, zero, negative, absurd, not a number, or a boolean."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip().replace(",", ""))
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: junk
        return None
    if not math.isfinite(number) or number <= 0 or number > MAX_SIZE_BYTES:
        return None
    return number / BYTES_PER_MB


def file_format(value: Any) -> str | None:
    """'.zip', 'zip' and 'ZIP' are one format: ZIP."""
    text = _text(value)
    if text is None:
        return None
    text = text.lstrip(".").strip().upper()
    return text[:MAX_FORMAT] or None


def organization_name(value: Any) -> str | None:
    if isinstance(value, dict):
        return _text(value.get("name")) or _text(value.get("title"))
    return _text(value)


def tag_names(value: Any) -> tuple[str, ...]:
    """Tag names, each once whatever its case (the first spelling kept), sorted."""
    if not isinstance(value, list):
        return ()
    names: dict[str, str] = {}
    for tag in value:
        name = _text(tag.get("name") or tag.get("display_name")) if isinstance(tag, dict) else None
        name = name or _text(tag)
        if name:
            names.setdefault(name.casefold(), name)
    return tuple(sorted(names.values(), key=str.casefold))


def views(value: Any) -> int | None:
    total = value.get("total") if isinstance(value, dict) else None
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        return None
    return total


def parse_time(value: Any) -> datetime | None:
    """CKAN's timestamps (ISO 8601, usually without a zone: UTC) as aware datetimes."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or one off the calendar's ends in UTC
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def packages_in(document: Any) -> list[Any] | None:
    """The packages in a saved CKAN answer: a `package_search` result (`{count, results}`), a
    list (`current_package_list_with_resources`), one package (`package_show`), with or without
    the `{help, success, result}` envelope. None when it holds none of these."""
    if isinstance(document, dict) and "result" in document and "success" in document:
        if document.get("success") is False:
            return None
        document = document["result"]
    if isinstance(document, dict) and isinstance(document.get("results"), list):
        return list(document["results"])
    if isinstance(document, list):
        # Packages, not another kind of list (organization_list, say): they have resources.
        is_package = [isinstance(item, dict) and "resources" in item for item in document]
        return document if all(is_package) else None
    if isinstance(document, dict) and "id" in document and "resources" in document:
        return [document]
    return None
