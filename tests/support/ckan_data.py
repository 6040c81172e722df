"""CKAN datasets for tests: builders shaped like the recorded ones, a hostile catalog, the fixtures.

- `package()` / `resource()`: one CKAN package or resource dict, shaped like the real ones in
  tests/fixtures/ckan/ (see the README there), with the fields a harvester reads set from arguments.
- `hostile_catalog(n, seed=...)`: n packages full of what real portals send (see its docstring).
- `load_fixture(name)` / `fixture_packages()`: the recorded portal responses.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ckan"

ORGANIZATIONS = {
    "noaa-gov": "National Oceanic and Atmospheric Administration, Department of Commerce",
    "nasa-gov": "National Aeronautics and Space Administration",
    "usgs-gov": "U.S. Geological Survey, Department of the Interior",
    "wsl": "Swiss Federal Institute for Forest, Snow and Landscape Research WSL",
}

# Sizes dealt to the first resources of a hostile catalog (then drawn at random, 30% of the time).
# `MISSING` means the resource has no `size` key at all.
MISSING = "<no size key>"
HOSTILE_SIZES: list[object] = [
    52_428_800,  # a plain int
    "12345",  # a numeric string
    "",
    None,
    "N/A",
    "1.5 GB",  # a number with a unit
    -1,  # negative
    10**20,  # absurd: 100 exabytes
    2048.5,  # a float
    True,  # a boolean (an int subclass in Python!)
    0,
    MISSING,
]

# URLs dealt to every other resource of a hostile catalog (then drawn at random, 5% of the time).
# `DUPLICATE` means: the URL of a resource of an earlier dataset.
DUPLICATE = "<an earlier dataset's URL>"
HOSTILE_URLS: list[object] = [
    "mailto:data@example.org",
    "file:///srv/data/export.csv",
    "javascript:alert(1)",
    "",
    None,
    "/download/x",  # relative to the portal
    "ftp://ftp.example.org/pub/data/sst_2019.nc",  # ftp is a valid asset
    "https://data.example.org/files/annual report 2019.csv",  # a space
    "https://data.example.org/fichiers/données-été-東京.csv",  # non-ASCII
    DUPLICATE,
]

# Titles dealt to every sixth dataset, in turn.
UNICODE_TITLES = [
    "東京都の気象観測データ 2019",  # CJK
    "Coral reef 🐠🌊 survey 🔥",  # emoji (outside the BMP)
    "بيانات جودة الهواء — Air quality",  # RTL (Arabic) mixed with LTR
    "Zu\u0308rich Seeüberwachung",  # a combining diaeresis next to a precomposed one
]

TIE_TIMESTAMP = "2020-06-01T12:00:00.482910"  # shared by every seventh dataset (a bulk re-index)
SAME_MILLISECOND = ("2021-03-03T03:03:03.123456", "2021-03-03T03:03:03.123999")  # tie in Solr

SUBJECTS = ["Sea surface temperature", "Precipitation", "Snow depth", "Crop yields", "Air quality"]
PLACES = ["Gulf of Mexico", "Alaska", "Davos", "Iowa", "Great Lakes"]
TAGS = ["climate", "ocean", "snow", "agriculture", "weather", "satellite", "soil"]
FORMATS = ["CSV", "ZIP", ".zip", "zip", "NetCDF", "HTML", "URL", "", None]
NOTES = ["", "Daily observations.", "<p>HTML <b>notes</b></p>", "Markdown **notes**\r\nwith CRLF"]


def _uuid(text: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, text))


def resource(
    url: str | None,
    *,
    id: str | None = None,
    name: str | None = None,
    format: str | None = "CSV",
    size: object = None,
) -> dict:
    """A CKAN resource; `size` is passed through as given. `package()` fills a missing id."""
    if name is None:
        name = url.rstrip("/").rsplit("/", 1)[-1] if isinstance(url, str) and url else "Resource"
    return {
        "id": id,
        "package_id": None,
        "name": name,
        "description": "",
        "url": url,
        "format": format,
        "size": size,
        "mimetype": None,
        "mimetype_inner": None,
        "hash": "",
        "state": "active",
        "position": 0,
        "created": "2020-01-01T00:00:00.000000",
        "last_modified": None,
        "url_type": None,
        "resource_type": None,
        "cache_url": None,
        "cache_last_updated": None,
    }


def package(
    id: str,
    *,
    name: str | None = None,
    title: str | None = None,
    organization: str | None = "noaa-gov",
    tags: Iterable[str] = (),
    modified: str = "2024-01-01T00:00:00.000000",
    resources: Iterable[dict] = (),
    views: int | None = None,
    notes: str = "",
) -> dict:
    """A CKAN package. Resources are copied, given `package_id`, `position` and an id if missing."""
    owner = None
    if organization is not None:
        owner = {
            "id": _uuid(f"organization/{organization}"),
            "name": organization,
            "title": ORGANIZATIONS.get(organization, organization),
            "type": "organization",
            "description": "",
            "image_url": "",
            "created": "2013-03-14T03:44:40.434269",
            "is_organization": True,
            "approval_status": "approved",
            "state": "active",
        }
    tag_list = [
        {
            "id": _uuid(f"tag/{tag}"),
            "name": tag,
            "display_name": tag,
            "state": "active",
            "vocabulary_id": None,
        }
        for tag in tags
    ]
    resource_list = [
        {
            **item,
            "id": item.get("id") or _uuid(f"{id}/resource/{position}"),
            "package_id": id,
            "position": position,
        }
        for position, item in enumerate(resources)
    ]
    result: dict[str, Any] = {
        "id": id,
        "name": name if name is not None else id.lower(),
        "title": title if title is not None else f"Dataset {id}",
        "notes": notes,
        "type": "dataset",
        "state": "active",
        "private": False,
        "metadata_created": modified,
        "metadata_modified": modified,
        "organization": owner,
        "owner_org": owner["id"] if owner else None,
        "tags": tag_list,
        "num_tags": len(tag_list),
        "resources": resource_list,
        "num_resources": len(resource_list),
        "groups": [],
        "extras": [],
        "license_id": "cc-by",
        "license_title": "Creative Commons Attribution",
        "isopen": True,
        "url": None,
        "author": "",
        "author_email": "",
        "maintainer": "",
        "maintainer_email": "",
        "version": None,
        "creator_user_id": None,
        "relationships_as_object": [],
        "relationships_as_subject": [],
    }
    if views is not None:
        result["tracking_summary"] = {"total": views, "recent": views // 10}
    return result


def hostile_catalog(n: int, *, seed: int = 1) -> list[dict]:
    """n packages mixing what real portals send; the same list for the same (n, seed).

    For n >= 30 every kind below appears at least once (tests/unit/test_ckan_portal.py checks):

    - resource `size`: each of HOSTILE_SIZES dealt to the first resources: int, numeric string
      "12345", "", None, "N/A", "1.5 GB", -1, 10**20, float 2048.5, True, 0, and no `size` key;
      later resources get a random int (85 B to 4 GB) or, 30% of the time, one of those again.
    - resource `url`: each of HOSTILE_URLS dealt to every other resource: mailto:, file:///,
      javascript:, "", None, relative "/download/x", ftp:// (a valid asset), a URL with a space,
      a URL with non-ASCII characters, and the URL of an earlier dataset (duplicate across
      datasets); later, 5% duplicates and 5% others of those kinds; the rest plain https URLs.
    - resource `format`: CSV, ZIP, ".zip", "zip", NetCDF, HTML (landing pages), URL, "", None.
    - titles: every sixth dataset (i % 6 == 1) has a title from UNICODE_TITLES, in turn: CJK,
      emoji, RTL Arabic, combining marks.
    - ids: every tenth (i % 10 == 7) is not a UUID ("DOC-4007"); the rest are random UUIDs.
    - no resources at all: i % 11 == 6. Organization None: i % 13 == 5.
    - tags: duplicate tags (i % 9 == 2: "climate" twice), same tag in different case
      (i % 9 == 4: "Climate", "climate", "CLIMATE"), otherwise 0-3 random tags.
    - metadata_modified: random over 2012-2025 with microseconds, but every seventh dataset
      (i % 7 == 3) has exactly TIE_TIMESTAMP; datasets 4 and 5 differ only below the millisecond
      (SAME_MILLISECOND, a tie in Solr); dataset 8 has no fraction ("2018-02-02T02:02:02", as
      CKAN writes a whole second) and dataset 9 has milliseconds and a Z ("...02.500Z").
      metadata_created is at or before metadata_modified.
    - views: no tracking_summary when i % 4 == 0, else 0 or a random count.
    - notes: "", plain text, HTML, Markdown with CRLF.
    """
    rng = random.Random(seed)
    sizes = list(HOSTILE_SIZES)
    urls = list(HOSTILE_URLS)
    earlier_urls: list[str] = []  # plain https URLs of datasets already built
    resource_count = 0
    packages = []
    for i in range(n):
        random_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        package_id = f"DOC-{4000 + i}" if i % 10 == 7 else random_id
        if i % 6 == 1:
            title = UNICODE_TITLES[(i // 6) % len(UNICODE_TITLES)]
        else:
            title = f"{rng.choice(SUBJECTS)}, {rng.choice(PLACES)} {rng.randrange(1990, 2025)}"
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        tags = rng.sample(TAGS, k=rng.randrange(4))
        if i % 9 == 2:
            tags = ["climate", *tags, "climate"]
        elif i % 9 == 4:
            tags = ["Climate", "climate", "CLIMATE"]
        modified = _hostile_modified(i, rng)
        created = datetime.fromisoformat(modified.removesuffix("Z"))
        created -= timedelta(days=rng.randrange(0, 900))

        own_urls: list[str] = []
        resources = []
        for j in range(0 if i % 11 == 6 else 1 + rng.randrange(4)):
            extension = rng.choice(["csv", "nc"])
            url: Any = f"https://data.example.org/{package_id}/file-{j}.{extension}"
            if urls and resource_count % 2 == 1:
                url = urls.pop(0)
            elif rng.random() < 0.05:
                url = DUPLICATE
            elif rng.random() < 0.05:
                url = rng.choice(HOSTILE_URLS)
            if url == DUPLICATE:
                if earlier_urls:
                    url = rng.choice(earlier_urls)
                else:  # nothing to duplicate yet: deal it again later
                    urls.append(DUPLICATE)
                    url = f"https://data.example.org/{package_id}/file-{j}.csv"
            if isinstance(url, str) and url.startswith("https://data.example.org/"):
                own_urls.append(url)

            if sizes:
                size = sizes.pop(0)
            elif rng.random() < 0.3:
                size = rng.choice(HOSTILE_SIZES)
            else:
                size = rng.randrange(85, 4_000_000_000)
            item = resource(url, format=rng.choice(FORMATS), size=None if size == MISSING else size)
            if size == MISSING:
                del item["size"]
            resources.append(item)
            resource_count += 1
        earlier_urls.extend(own_urls)

        result = package(
            package_id,
            name=f"{slug[:60] or 'dataset'}-{i}",
            title=title,
            organization=None if i % 13 == 5 else rng.choice(list(ORGANIZATIONS)),
            tags=tags,
            modified=modified,
            resources=resources,
            views=None if i % 4 == 0 else rng.choice([0, rng.randrange(1, 50_000)]),
            notes=rng.choice(NOTES),
        )
        result["metadata_created"] = created.isoformat()
        packages.append(result)
    return packages


def _hostile_modified(i: int, rng: random.Random) -> str:
    if i in (4, 5):
        return SAME_MILLISECOND[i - 4]
    if i == 8:
        return "2018-02-02T02:02:02"
    if i == 9:
        return "2018-02-02T02:02:02.500Z"
    if i % 7 == 3:
        return TIE_TIMESTAMP
    moment = datetime(2012, 1, 1) + timedelta(
        seconds=rng.randrange(14 * 365 * 86400), microseconds=rng.randrange(1_000_000)
    )
    return moment.isoformat()  # like CKAN: no fraction when the microseconds are 0


def load_fixture(name: str) -> Any:
    """The JSON of tests/fixtures/ckan/<name> (gzipped when its name ends in .gz)."""
    data = (FIXTURES / name).read_bytes()
    return json.loads(gzip.decompress(data) if name.endswith(".gz") else data)


def fixture_packages() -> list[dict]:
    """Every package of the recorded package lists, searches and shows, first copy of each id.

    From envidat_current_package_list_with_resources_2021.json.gz (354),
    datagov_package_search_group_agriculture_2020.json (18), envidat_package_search_2026.json (2)
    and envidat_package_show_2026.json (1).
    """
    sources = [
        load_fixture("envidat_current_package_list_with_resources_2021.json.gz")["result"],
        load_fixture("datagov_package_search_group_agriculture_2020.json")["result"]["results"],
        load_fixture("envidat_package_search_2026.json")["result"]["results"],
        [load_fixture("envidat_package_show_2026.json")["result"]],
    ]
    by_id: dict[str, dict] = {}
    for packages in sources:
        for item in packages:
            by_id.setdefault(item["id"], item)
    return list(by_id.values())
