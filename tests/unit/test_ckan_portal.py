"""The test CKAN portal (tests/support/ckan_portal.py) and the test datasets
(tests/support/ckan_data.py)."""

from __future__ import annotations

import json
import time
import unicodedata
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.ckan_data import (
    SAME_MILLISECOND,
    TIE_TIMESTAMP,
    fixture_packages,
    hostile_catalog,
    load_fixture,
    package,
)
from tests.support.ckan_portal import CkanPortal, solr_time

PAGING_SORT = "metadata_modified asc, id asc"


@pytest.fixture
def catalog() -> list[dict]:
    return hostile_catalog(97)


@pytest.fixture
def portal(catalog: list[dict]) -> Iterator[CkanPortal]:
    with CkanPortal(catalog) as running:
        yield running


def call(portal: CkanPortal, action: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{portal.base_url}/api/3/action/{action}", params=params, timeout=5)


def search(portal: CkanPortal, **params: Any) -> dict:
    response = call(portal, "package_search", **params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    return body["result"]


def ids(result: dict) -> list[str]:
    return [item["id"] for item in result["results"]]


def paging_key(dataset: dict) -> tuple:
    return (solr_time(dataset["metadata_modified"]), dataset["id"])


# --- envelopes ---------------------------------------------------------------------------------


def test_the_search_envelope_has_the_shape_of_data_gov(portal: CkanPortal) -> None:
    body = call(portal, "package_search", rows=2).json()
    recorded = load_fixture("datagov_package_search_group_agriculture_2020.json")
    assert body.keys() == recorded.keys()
    assert body["result"].keys() == recorded["result"].keys()
    assert body["help"] == f"{portal.base_url}/api/3/action/help_show?name=package_search"
    assert body["result"]["count"] == 97
    assert body["result"]["facets"] == body["result"]["search_facets"] == {}


def test_without_help_the_envelope_has_the_shape_of_envidat(catalog: list[dict]) -> None:
    recorded = load_fixture("envidat_package_search_2026.json")
    with CkanPortal(catalog, help_field=False) as portal:
        body = call(portal, "package_search", rows=2).json()
        show = call(portal, "package_show", id="nope").json()
    assert body.keys() == recorded.keys() == {"success", "result"}
    assert body["result"].keys() == recorded["result"].keys()
    assert "help" not in show


def test_package_show_finds_by_id_or_name_and_404s_like_ckan(
    portal: CkanPortal, catalog: list[dict]
) -> None:
    wanted = catalog[7]
    assert call(portal, "package_show", id=wanted["id"]).json()["result"] == wanted
    assert call(portal, "package_show", id=wanted["name"]).json()["result"] == wanted

    missing = call(portal, "package_show", id="no-such-dataset")
    recorded = load_fixture("ckan_package_show_404_error.json")
    assert missing.status_code == 404
    assert missing.json().keys() == recorded.keys()
    assert missing.json()["error"] == recorded["error"]
    assert missing.json()["success"] is False


def test_status_show_and_unknown_actions(portal: CkanPortal) -> None:
    status = call(portal, "status_show").json()
    assert status["success"] is True
    assert status["result"]["ckan_version"] == "2.10.4"

    unknown = call(portal, "package_list")
    assert unknown.status_code == 400
    assert unknown.json()["success"] is False
    assert unknown.json()["error"]["__type"] == "Bad Request"


def test_bad_parameters_answer_like_ckan(portal: CkanPortal) -> None:
    rows = call(portal, "package_search", rows="many")
    assert rows.status_code == 409
    assert rows.json()["error"] == {"rows": ["Invalid integer"], "__type": "Validation Error"}

    fq = call(portal, "package_search", fq="-organization:noaa-gov")
    assert fq.status_code == 400
    assert fq.json()["error"]["__type"] == "Search Query Error"


def test_post_with_a_json_body_searches_too(portal: CkanPortal) -> None:
    response = httpx.post(
        f"{portal.base_url}/api/3/action/package_search",
        json={"rows": 3, "start": 0, "sort": PAGING_SORT},
        timeout=5,
    )
    assert response.status_code == 200
    assert len(response.json()["result"]["results"]) == 3
    assert portal.requests[-1]["params"] == {"rows": 3, "start": 0, "sort": PAGING_SORT}


def test_a_post_body_that_is_not_a_json_object_is_a_bad_request(portal: CkanPortal) -> None:
    response = httpx.post(
        f"{portal.base_url}/api/3/action/package_search", content=b"[1, 2]", timeout=5
    )
    assert response.status_code == 400


def test_every_request_is_recorded(portal: CkanPortal) -> None:
    call(portal, "package_search", rows="1", q="snow")
    call(portal, "package_show", id="nope")
    assert portal.requests == [
        {"action": "package_search", "params": {"rows": "1", "q": "snow"}, "status": 200},
        {"action": "package_show", "params": {"id": "nope"}, "status": 404},
    ]


# --- paging and filters ------------------------------------------------------------------------


def test_paging_with_rows_and_start_returns_every_dataset_once(
    portal: CkanPortal, catalog: list[dict]
) -> None:
    seen: list[dict] = []
    for start in range(0, 120, 10):
        seen += search(portal, rows=10, start=start, sort=PAGING_SORT)["results"]
    assert sorted(d["id"] for d in seen) == sorted(d["id"] for d in catalog)
    assert [paging_key(d) for d in seen] == sorted(paging_key(d) for d in catalog)


def test_the_default_sort_is_newest_first(portal: CkanPortal, catalog: list[dict]) -> None:
    result = search(portal, rows=1000)
    assert result["sort"] == "score desc, metadata_modified desc"
    keys = [paging_key(d) for d in result["results"]]
    assert [k[0] for k in keys] == sorted((k[0] for k in keys), reverse=True)
    assert len(search(portal)["results"]) == 10


def test_an_inclusive_lower_bound_keeps_ties_and_an_exclusive_one_drops_them(
    portal: CkanPortal, catalog: list[dict]
) -> None:
    tied = {d["id"] for d in catalog if d["metadata_modified"] == TIE_TIMESTAMP}
    later = {d["id"] for d in catalog if paging_key(d)[0] > solr_time(TIE_TIMESTAMP)}
    assert len(tied) >= 10

    inclusive = search(portal, rows=1000, fq=f"metadata_modified:[{TIE_TIMESTAMP}Z TO *]")
    exclusive = search(portal, rows=1000, fq=f"metadata_modified:{{{TIE_TIMESTAMP}Z TO *]")
    assert set(ids(inclusive)) == tied | later
    assert inclusive["count"] == len(tied | later)
    assert set(ids(exclusive)) == later


def test_timestamps_compare_at_millisecond_precision_like_solr(portal: CkanPortal) -> None:
    first, second = SAME_MILLISECOND  # .123456 and .123999: the same millisecond
    both = search(portal, rows=1000, fq=f"metadata_modified:[{second} TO *]")
    neither = search(portal, rows=1000, fq=f"metadata_modified:{{{first}Z TO *]")
    assert {first, second} <= {d["metadata_modified"] for d in both["results"]}
    assert not {first, second} & {d["metadata_modified"] for d in neither["results"]}


def test_keyset_paging_on_id(portal: CkanPortal, catalog: list[dict]) -> None:
    all_ids = sorted(d["id"] for d in catalog)
    middle = all_ids[40]
    after = search(portal, rows=1000, sort="id asc", fq=f"id:{{{middle} TO *]")
    assert ids(after) == all_ids[41:]
    including = search(portal, rows=5, sort="id asc", fq=f"id:[{middle} TO *]")
    assert ids(including) == all_ids[40:45]


def test_fl_limits_the_fields(portal: CkanPortal) -> None:
    only_id = search(portal, rows=5, fl="id")["results"]
    assert [item.keys() for item in only_id] == [{"id"}] * 5
    two = search(portal, rows=5, fl="id, metadata_modified")["results"]
    assert all(item.keys() == {"id", "metadata_modified"} for item in two)


def test_organization_filter(portal: CkanPortal, catalog: list[dict]) -> None:
    expected = {d["id"] for d in catalog if (d["organization"] or {}).get("name") == "wsl"}
    result = search(portal, rows=1000, fq="organization:wsl")
    assert set(ids(result)) == expected
    combined = search(
        portal, rows=1000, fq=f"organization:wsl metadata_modified:[{TIE_TIMESTAMP} TO *]"
    )
    assert set(ids(combined)) < expected
    required = search(portal, rows=1000, fq="+organization:wsl +dataset_type:dataset")
    assert set(ids(required)) == expected


def test_q_matches_title_name_notes_and_tags_ignoring_case(portal: CkanPortal) -> None:
    portal.add(package("q-1", title="Glacier MASS balance"), package("q-2", tags=["GlacierMass"]))
    portal.add(package("q-3", notes="About glacier mass."), package("glacier-mass-4"))
    assert sorted(ids(search(portal, q="glacier mass", rows=100))) == ["q-1", "q-3"]
    assert sorted(ids(search(portal, q="GLACIERMASS", rows=100))) == ["q-2"]
    assert ids(search(portal, q="glacier-mass", rows=100)) == ["glacier-mass-4"]
    assert search(portal, q="*:*")["count"] == 101


def test_rows_are_clamped_to_1000() -> None:
    datasets = [package(f"ds-{i:04d}") for i in range(1200)]
    with CkanPortal(datasets) as portal:
        result = search(portal, rows=5000)
    assert result["count"] == 1200
    assert len(result["results"]) == 1000


# --- faults and hooks --------------------------------------------------------------------------


def test_fail_next_fails_only_the_next_searches(portal: CkanPortal) -> None:
    portal.fail_next(2, status=503)
    first = call(portal, "package_search")
    assert call(portal, "package_show", id="nope").status_code == 404  # not a search: not failed
    second = call(portal, "package_search")
    assert (first.status_code, second.status_code) == (503, 503)
    assert first.json()["success"] is False
    assert first.json()["error"].keys() == {"message", "__type"}
    assert call(portal, "package_search").status_code == 200


def test_stall_next_makes_a_client_time_out_once(portal: CkanPortal) -> None:
    portal.stall_next(1, seconds=3)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{portal.base_url}/api/3/action/package_search", timeout=0.2)
    started = time.monotonic()
    assert call(portal, "package_search").status_code == 200
    assert time.monotonic() - started < 1


def test_stop_does_not_wait_for_a_stalled_request(catalog: list[dict]) -> None:
    portal = CkanPortal(catalog).start()
    portal.stall_next(1, seconds=30)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{portal.base_url}/api/3/action/package_search", timeout=0.2)
    started = time.monotonic()
    portal.stop()
    assert time.monotonic() - started < 5


def test_garble_next_answers_200_with_a_body_that_is_not_json(portal: CkanPortal) -> None:
    portal.garble_next()
    garbled = call(portal, "package_search")
    assert garbled.status_code == 200
    with pytest.raises(ValueError):
        json.loads(garbled.content)
    assert call(portal, "package_search").json()["success"] is True


def test_on_search_can_add_datasets_between_pages(portal: CkanPortal) -> None:
    seen: list[dict] = []

    def add_one_on_second_page(params: dict) -> None:
        seen.append(params)
        if params.get("start") == "10":
            portal.add(package("added-late", modified="2000-01-01T00:00:00"))

    portal.on_search = add_one_on_second_page
    first = search(portal, rows=10, start=0, sort=PAGING_SORT)
    second = search(portal, rows=10, start=10, sort=PAGING_SORT)
    assert (first["count"], second["count"]) == (97, 98)
    assert "added-late" not in ids(first) + ids(second)  # it went to the front, a page too late
    assert [p["start"] for p in seen] == ["0", "10"]
    assert portal.searches() == seen


def test_an_error_in_on_search_is_answered_500_and_kept(portal: CkanPortal) -> None:
    def broken(params: dict) -> None:
        raise AssertionError("a test's own check failed")

    portal.on_search = broken
    response = call(portal, "package_search")
    assert response.status_code == 500
    assert response.json()["error"]["__type"] == "Internal Server Error"
    assert [type(error) for error in portal.errors] == [AssertionError]


def test_datasets_can_be_changed_between_requests(portal: CkanPortal, catalog: list[dict]) -> None:
    portal.remove(catalog[0]["id"])
    with portal.lock:
        portal.datasets[catalog[1]["id"]]["title"] = "Renamed zebra"
    assert search(portal)["count"] == 96
    assert ids(search(portal, q="zebra")) == [catalog[1]["id"]]


# --- datasets ----------------------------------------------------------------------------------


def _sizes(catalog: list[dict]) -> list[Any]:
    return [r["size"] for p in catalog for r in p["resources"] if "size" in r]


def _urls(catalog: list[dict]) -> list[object]:
    return [r["url"] for p in catalog for r in p["resources"]]


def _titles(catalog: list[dict]) -> str:
    return "".join(p["title"] for p in catalog)


def _tag_names(catalog: list[dict]) -> list[list[str]]:
    return [[t["name"] for t in p["tags"]] for p in catalog]


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _shared_url(catalog: list[dict]) -> bool:
    owners: dict[str, set[str]] = defaultdict(set)
    for p in catalog:
        for r in p["resources"]:
            if isinstance(r["url"], str) and r["url"]:
                owners[r["url"]].add(p["id"])
    return any(len(datasets) > 1 for datasets in owners.values())


def _same_millisecond_different_text(catalog: list[dict]) -> bool:
    texts: dict[object, set[str]] = defaultdict(set)
    for p in catalog:
        texts[solr_time(p["metadata_modified"])].add(p["metadata_modified"])
    return any(len(group) > 1 for group in texts.values())


HOSTILE_KINDS = {
    "size int": lambda c: any(type(s) is int and 0 < s < 10**13 for s in _sizes(c)),
    "size numeric string": lambda c: any(isinstance(s, str) and s.isdigit() for s in _sizes(c)),
    "size empty string": lambda c: any(s == "" for s in _sizes(c)),
    "size None": lambda c: any(s is None for s in _sizes(c)),
    "size N/A": lambda c: any(s == "N/A" for s in _sizes(c)),
    "size with unit": lambda c: any(s == "1.5 GB" for s in _sizes(c)),
    "size negative": lambda c: any(type(s) in (int, float) and s < 0 for s in _sizes(c)),
    "size absurd": lambda c: any(type(s) is int and s >= 10**18 for s in _sizes(c)),
    "size float": lambda c: any(type(s) is float for s in _sizes(c)),
    "size boolean": lambda c: any(type(s) is bool for s in _sizes(c)),
    "size key missing": lambda c: any("size" not in r for p in c for r in p["resources"]),
    "url mailto": lambda c: any(str(u).startswith("mailto:") for u in _urls(c)),
    "url file": lambda c: any(str(u).startswith("file:///") for u in _urls(c)),
    "url javascript": lambda c: any(str(u).startswith("javascript:") for u in _urls(c)),
    "url empty": lambda c: "" in _urls(c),
    "url None": lambda c: None in _urls(c),
    "url relative": lambda c: any(str(u).startswith("/download/") for u in _urls(c)),
    "url ftp": lambda c: any(str(u).startswith("ftp://") for u in _urls(c)),
    "url with space": lambda c: any(" " in str(u) for u in _urls(c)),
    "url non-ASCII": lambda c: any(not str(u).isascii() for u in _urls(c)),
    "url shared by datasets": _shared_url,
    "format HTML": lambda c: any(r["format"] == "HTML" for p in c for r in p["resources"]),
    "title CJK": lambda c: any("\u4e00" <= ch <= "\u9fff" for ch in _titles(c)),
    "title emoji": lambda c: any(ord(ch) > 0xFFFF for ch in _titles(c)),
    "title RTL": lambda c: any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in _titles(c)),
    "title combining mark": lambda c: any(unicodedata.combining(ch) for ch in _titles(c)),
    "no resources": lambda c: any(not p["resources"] for p in c),
    "organization None": lambda c: any(p["organization"] is None for p in c),
    "duplicate tags": lambda c: any(len(set(n)) < len(n) for n in _tag_names(c)),
    "tags differing in case": lambda c: any(
        len({t.lower() for t in n}) < len(set(n)) for n in _tag_names(c)
    ),
    "many datasets on one timestamp": lambda c: (
        Counter(p["metadata_modified"] for p in c).most_common(1)[0][1] >= 4
    ),
    "same millisecond, other microseconds": _same_millisecond_different_text,
    "timestamp without fraction": lambda c: any("." not in p["metadata_modified"] for p in c),
    "timestamp with Z": lambda c: any(p["metadata_modified"].endswith("Z") for p in c),
    "non-UUID id": lambda c: any(not _is_uuid(p["id"]) for p in c),
    "no tracking_summary": lambda c: any("tracking_summary" not in p for p in c),
}


@pytest.mark.parametrize("n", [30, 300])
def test_the_hostile_catalog_holds_every_hostile_kind(n: int) -> None:
    catalog = hostile_catalog(n, seed=n)
    missing = [kind for kind, present in HOSTILE_KINDS.items() if not present(catalog)]
    assert missing == []
    assert len(catalog) == n
    assert len({p["id"] for p in catalog}) == len({p["name"] for p in catalog}) == n
    json.dumps(catalog)  # serialisable as a portal would send it


def test_the_hostile_catalog_is_deterministic_for_a_seed() -> None:
    assert hostile_catalog(50, seed=3) == hostile_catalog(50, seed=3)
    assert hostile_catalog(50, seed=3) != hostile_catalog(50, seed=4)


def test_the_hostile_catalog_is_served_and_paged_whole(catalog: list[dict]) -> None:
    with CkanPortal(catalog) as portal:
        result = search(portal, rows=1000, sort=PAGING_SORT)
    assert result["results"] == sorted(catalog, key=paging_key)


def test_fixture_packages_are_the_recorded_packages_once_each() -> None:
    packages = fixture_packages()
    assert len(packages) == len({p["id"] for p in packages}) == 375
    assert all(isinstance(p["resources"], list) for p in packages)
    with CkanPortal(packages) as portal:
        assert call(portal, "package_show", id="DOC-4271").json()["result"]["name"] == (
            "internet-weather-source"
        )
        assert search(portal, fq="organization:noaa-gov")["count"] == 7
