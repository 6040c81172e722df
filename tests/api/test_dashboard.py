"""The operators' dashboard (dashboard/api.py): `/`, its `/dashboard/panel` fragment and its
static files, through HTTP. The figures it shows must be the database's, its page must load
nothing from elsewhere (Content-Security-Policy), and what imports and nodes wrote must come
out escaped."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import pytest

from priorizer.dashboard.api import SECURITY_HEADERS
from tests.support.api import Api
from tests.support.factories import asset
from tests.support.html_page import Page

SUM_A = "a" * 64
SUM_B = "b" * 64
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
EVIL_ID = '<script>alert("id")</script>'
EVIL_NAME = "<img src=x onerror=alert('name')>&\"quoted\""
# The figures the page shows in `data-status` / `data-value` pairs.
FIGURES = (
    "system_health",
    "assets",
    "assets_with_a_copy",
    "assets_at_target",
    "copies",
    "active_allocations",
    "nodes",
    "datasets",
    "unreachable_assets",
    "withdrawn_assets",
    "assets_with_conflicting_copies",
)


def inside(html: str, element_id: str) -> Page:
    """The part of a page in the element with that id (a `div`, `p`, `section` or `table`)."""
    start = html.index(f'id="{element_id}"')
    tag_start = html.rindex("<", 0, start)
    tag = html[tag_start + 1 : html.index(" ", tag_start)]
    return Page.of(html[tag_start : html.index(f"</{tag}>", start)])


@pytest.fixture(autouse=True)
def no_background_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("priorizer.db.database.BACKGROUND_PAUSE_MAX_SECONDS", 0.0)


@pytest.fixture
def api(client, database, settings, clock) -> Api:
    return Api(client, database, settings, clock)


@pytest.fixture
def service(start_service, clock) -> Callable[..., Api]:
    return lambda **overrides: Api(*start_service(**overrides), clock)


@pytest.fixture
def rescue(service) -> Api:
    """A catalog part rescued: a copy at the target, a copy short of it, open leases, a
    withdrawn asset, an unreachable one, and an asset whose id and name (as an import may
    write them) are markup."""
    s = service(failure_threshold=1)
    s.add(
        asset("9a", priority=9, size_mb=100.0),
        asset("9b", priority=9, size_mb=300.0),
        asset("evil", id=EVIL_ID, name=EVIL_NAME, priority=7, size_mb=50.0),
        asset("5a", priority=5, size_mb=50.0),
        asset("5b", priority=5, size_mb=70.0),
        asset("2a", priority=2, size_mb=10.0),
    )
    assert s.ok("/assets/withdraw", asset_ids=["asset-2a"])["changed"] == 1
    assert len(s.allocate_sorted("node-a")) == 5
    assert s.allocate_sorted("node-b", 0.1) == ["asset-9a"]
    s.completed("asset-9a", "node-a", checksum_sha256=SUM_A)
    # At the target. (Another checksum would be a disputed copy, which does not count.)
    s.completed("asset-9a", "node-b", checksum_sha256=SUM_A)
    s.completed(EVIL_ID, "node-a")
    s.ok("/fail", asset_id="asset-5b", node_id="node-a", reason="HTTP 404")  # unreachable
    return s  # node-a still holds 9b and 5a


# --- Figures ------------------------------------------------------------------------------------


def test_the_figures_are_those_of_status(rescue):
    status = rescue.status()
    page = rescue.page()

    shown = page.figures()
    assert set(shown) == set(FIGURES)
    for key, value in shown.items():
        assert value == str(status[key]), key
    # What the test is about: figures that differ from one another, and from zero.
    assert (status["assets"], status["assets_with_a_copy"], status["assets_at_target"]) == (
        6,
        2,
        1,
    )
    assert (status["copies"], status["active_allocations"], status["nodes"]) == (3, 2, 2)
    assert (status["unreachable_assets"], status["withdrawn_assets"]) == (1, 1)
    assert status["assets_with_conflicting_copies"] == 0
    assert status["system_health"] == "healthy"
    # The number shown is the figure too, not only the attribute.
    [assets] = page.find("dd", data_status="assets")
    assert assets.text == "6"


def test_the_panel_shows_the_same_figures_as_the_page(rescue):
    assert rescue.page("/dashboard/panel").figures() == rescue.page("/").figures()


def test_the_priority_table_counts_each_base_priority(rescue):
    page = rescue.page()

    expected = {p: (0, 0, 0) for p in range(1, 11)}
    expected |= {9: (2, 1, 1), 7: (1, 1, 0), 5: (2, 0, 0), 2: (1, 0, 0)}
    assert page.by_priority() == expected
    rows = [int(e.attrs["data-priority"]) for e in page.find("tr") if "data-priority" in e.attrs]
    assert rows == list(range(10, 0, -1))  # highest first


def test_the_progress_bars_split_the_assets_and_the_bytes(rescue):
    html = rescue.get_html("/").text

    assets = inside(html, "progress-assets")
    parts = {e.attrs["data-part"]: e.attrs for e in assets.find("rect")}
    assert {part: float(attrs["data-value"]) for part, attrs in parts.items()} == {
        "at target": 1,
        "with a copy": 1,
        "no copy yet": 4,
    }
    assert [float(parts[p]["width"]) for p in ("at target", "with a copy", "no copy yet")] == [
        pytest.approx(100 / 6, abs=0.001),
        pytest.approx(100 / 6, abs=0.001),
        pytest.approx(400 / 6, abs=0.001),
    ]
    data = inside(html, "progress-bytes")
    # Known sizes: 580 MB, 150 MB of it with a copy, 100 MB at the target.
    assert {e.attrs["data-part"]: float(e.attrs["data-value"]) for e in data.find("rect")} == {
        "at target": 100.0,
        "with a copy": 50.0,
        "no copy yet": 430.0,
    }
    assert "150 MB of 580 MB" in " ".join(data.texts)


def test_the_priority_chart_has_a_column_per_priority_with_assets(rescue):
    html = rescue.get_html("/").text
    chart = inside(html, "priority-chart")

    rects = {e.attrs["data-column"]: e.attrs for e in chart.find("rect")}
    assert {column: int(a["data-value"]) for column, a in rects.items()} == {
        "9": 2,
        "7": 1,
        "5": 2,
        "2": 1,
    }
    assert float(rects["9"]["height"]) == float(rects["5"]["height"]) == 40.0  # the tallest
    assert float(rects["7"]["height"]) == 20.0
    labels = [e.text for e in chart.find("span")]
    assert labels == [str(p) for p in range(1, 11)]


def test_the_node_table_shows_what_each_node_holds(rescue):
    page = rescue.page()

    rows = page.find("tr")
    shown = [e.attrs["data-node"] for e in rows if "data-node" in e.attrs]
    assert sorted(shown) == ["node-a", "node-b"]
    cells = page.having("data-field")
    fields: list[dict[str, str]] = []
    for cell in cells:
        if cell.attrs["data-field"] == "open_leases":
            fields.append({})
        fields[-1][cell.attrs["data-field"]] = cell.text
    for node_id, values in zip(shown, fields, strict=True):
        node = rescue.client.get(f"/nodes/{node_id}").json()
        assert values == {
            "open_leases": str(node["open_leases"]),
            "copies": str(node["copies"]),
            "failures": str(node["failures"]),
        }, node_id
    assert {n: f["open_leases"] for n, f in zip(shown, fields, strict=True)} == {
        "node-a": "2",
        "node-b": "0",
    }


def test_an_empty_service_shows_zeros_and_says_nothing_happened_yet(api):
    page = api.page()

    assert set(page.figures().values()) == {"0", "healthy"}
    assert page.by_priority() == {p: (0, 0, 0) for p in range(1, 11)}
    text = " ".join(page.texts)
    assert "No node has asked for work yet." in text
    assert "No maintenance cycle has run yet." in text
    assert "No node has failed to download an asset." in text
    assert "No copies disagree." in text
    assert page.find("rect") == []


def test_the_maintenance_section_follows_the_cycles(api, clock):
    api.add(asset(1, priority=9, size_mb=100.0), asset(2, priority=8, size_mb=100.0))
    api.allocate_sorted("node-a")
    api.maintenance()
    api.completed("asset-1", "node-a")
    api.ok("/release", asset_id="asset-2", node_id="node-a")
    clock.advance(minutes=2)
    api.maintenance()

    html = api.get_html("/").text
    last = inside(html, "last-cycle")
    assert [e.text for e in last.find("span")] == ["ok"]
    cycles = inside(html, "cycle-chart")
    assert [e.attrs["data-column"] for e in cycles.find("rect")] == ["12:00", "12:02"]
    outcomes = inside(html, "outcome-chart")  # the second cycle has one to compare with
    rects = {e.attrs["class"]: e.attrs for e in outcomes.find("rect")}
    assert {css: attrs["data-value"] for css, attrs in rects.items()} == {
        "done": "1",
        "released": "1",
    }
    # Two leases on a scale of 0 to 2: the column fills the height, in the last of 30 slots,
    # and the scale says so.
    assert [e.text for e in outcomes.find("span", data_tick="top")] == ["2"]
    assert sum(float(a["height"]) for a in rects.values()) == pytest.approx(30)
    assert float(rects["done"]["x"]) == pytest.approx(29 * 100 / 30 + 100 / 30 * 0.1, abs=0.001)
    assert float(rects["done"]["width"]) == pytest.approx(100 / 30 * 0.8, abs=0.001)
    totals = {e.attrs["data-outcome"]: e.text for e in Page.of(html).having("data-outcome")}
    assert totals == {"done": "1", "failed": "0", "expired": "0", "released": "1"}


def test_a_late_completion_shows_in_the_outcome_chart(api, clock):
    api.add(asset(1, priority=9))
    api.allocate_sorted("node-a")
    clock.advance(hours=25)
    assert api.maintenance()["steps"]["expired_leases"] == 1
    assert api.completed("asset-1", "node-a")["late"] is True
    clock.advance(minutes=2)
    moved = api.maintenance()["stats"]["since_last_cycle"]
    assert (moved["completed"], moved["expired"]) == (1, -1)

    html = api.get_html("/").text
    outcomes = inside(html, "outcome-chart")

    assert [(e.attrs["class"], e.attrs["data-value"]) for e in outcomes.find("rect")] == [
        ("done", "1")
    ]


# --- Assets in trouble --------------------------------------------------------------------------


def trouble_rows(html: str, table: str) -> dict[str, dict[str, str]]:
    """The rows of the `failing` or `conflicting` table: by asset id, each cell by its field."""
    rows: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for element in inside(html, table).elements:
        if "data-asset" in element.attrs:
            current = rows.setdefault(element.attrs["data-asset"], {})
        elif "data-trouble" in element.attrs:
            current[element.attrs["data-trouble"]] = element.text
        elif "data-checksum" in element.attrs:
            current[element.attrs["data-checksum"]] = element.text.strip()  # its nodes
    return rows


def test_failing_and_conflicting_assets_are_listed_with_their_reasons(rescue):
    html = rescue.get_html("/").text

    assert trouble_rows(html, "failing") == {"asset-5b": {"failed_nodes": "1", "note": "HTTP 404"}}
    failing = inside(html, "failing")
    assert "unreachable" in [e.text for e in failing.find("span")]
    assert "node-a" in [e.text for e in failing.find("td")]


def test_assets_with_conflicting_copies_are_listed_with_each_checksum(service):
    s = service()
    s.add(asset("9a", priority=9, size_mb=100.0), asset("9b", priority=9, size_mb=100.0))
    assert "asset-9a" in s.allocate_sorted("node-a") and "asset-9a" in s.allocate_sorted("node-b")
    s.completed("asset-9a", "node-a", checksum_sha256=SUM_A)
    s.completed("asset-9a", "node-b", checksum_sha256=SUM_B)  # disputed: a tie-breaker is due

    html = s.get_html("/").text

    assert trouble_rows(html, "conflicting") == {
        "asset-9a": {"copies": "2", SUM_A: "node-a", SUM_B: "node-b"}
    }
    assert s.get_html("/dashboard/panel").text.count('data-asset="asset-9a"') == 1


def test_failing_assets_show_the_most_failed_first_with_their_latest_reason(service, clock):
    s = service(failure_threshold=3, replication_target=3)
    s.add(*[asset(n, priority=5, size_mb=1.0) for n in range(25)])
    nodes = ["node-a", "node-b", "node-c"]
    for node in nodes:
        assert len(s.allocate_sorted(node)) == 25
    # asset-3 fails on three nodes (unreachable), asset-7 on two, the rest on node-a alone.
    for n in range(25):
        s.ok("/fail", asset_id=f"asset-{n}", node_id="node-a", reason=f"HTTP 404 ({n})")
    for node in ("node-b", "node-c"):
        clock.advance(minutes=1)
        s.ok("/fail", asset_id="asset-3", node_id=node, reason=f"<b>timeout</b> on {node}")
    s.ok("/fail", asset_id="asset-7", node_id="node-b", reason="checksum mismatch")

    html = s.get_html("/").text
    rows = trouble_rows(html, "failing")

    assert list(rows)[:2] == ["asset-3", "asset-7"]  # most failed first
    assert len(rows) == 20  # the first 20 of 25, and the page says so
    assert "20 of 25 assets" in " ".join(inside(html, "h-failing").texts)
    assert rows["asset-3"] == {"failed_nodes": "3", "note": "<b>timeout</b> on node-c"}
    assert rows["asset-7"] == {"failed_nodes": "2", "note": "checksum mismatch"}
    assert rows["asset-0"] == {"failed_nodes": "1", "note": "HTTP 404 (0)"}
    # A node's words are shown as text, never as markup.
    assert "<b>timeout" not in html and "&lt;b&gt;timeout&lt;/b&gt; on node-c" in html


def test_the_refresh_interval_is_the_setting(service):
    s = service(dashboard_refresh_seconds=2.5)
    [main] = s.page().find("main", id="panel")

    assert main.attrs["data-refresh-seconds"] == "2.5"
    assert main.attrs["data-panel-url"] == "/dashboard/panel"


# --- Escaping -----------------------------------------------------------------------------------


def test_markup_in_imported_ids_and_names_is_shown_as_text(rescue):
    html = rescue.get_html("/").text
    page = Page.of(html)

    assert EVIL_ID not in html
    assert "<img" not in html
    # The browser reads back exactly what was imported, as text.
    names = [e for e in page.find("td") if e.attrs.get("class") == "name"]
    assert EVIL_NAME in [e.text for e in names]
    assert EVIL_ID in [e.attrs.get("title") for e in names]
    # And no element came out of it: the page's one script is ours.
    assert [e.attrs for e in page.find("script")] == [{"src": "/static/dashboard.js", "defer": ""}]
    assert page.find("img") == []
    panel = rescue.get_html("/dashboard/panel").text
    assert EVIL_ID not in panel
    assert "<img" not in panel


def test_node_ids_cannot_carry_markup(api):
    api.add(asset(1))

    response = api.client.post("/allocate", json={"node_id": "<script>", "free_space_gb": 1})

    assert response.status_code == 422
    page = api.page()
    assert page.figures()["nodes"] == "0"
    assert page.having("data-node") == []
    assert len(page.find("script")) == 1


# --- Headers, fragment, static files ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/dashboard/panel"])
def test_the_pages_carry_a_strict_content_security_policy(api, path):
    response = api.get_html(path)

    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert {k.lower(): v for k, v in SECURITY_HEADERS.items()}.items() <= dict(
        response.headers
    ).items()


@pytest.mark.parametrize("path", ["/", "/dashboard/panel"])
def test_the_pages_need_nothing_the_policy_forbids(rescue, path):
    """No inline script, style or event handler (the CSP would block them), and nothing
    loaded from another origin."""
    html = rescue.get_html(path).text
    page = Page.of(html)

    for script in page.find("script"):
        assert script.attrs.get("src"), "inline script"
        assert script.text.strip() == ""
    assert page.find("style") == []
    assert page.find("iframe") == [] and page.find("object") == []
    for element in page.elements:
        for name in element.attrs:
            assert name != "style", element
            assert not name.startswith("on"), element
    for element in page.elements:
        for name in ("src", "href", "action", "data-panel-url"):
            url = element.attrs.get(name)
            if url is not None:
                assert url.startswith("/") and not url.startswith("//"), (name, url)
    assert "http://" not in html
    assert "https://" not in html  # not even the assets' source URLs


def test_everything_the_page_refers_to_is_served_here(rescue):
    page = rescue.page()

    urls = {
        e.attrs[name]
        for e in page.elements
        for name in ("src", "href", "data-panel-url")
        if name in e.attrs
    }
    assert {"/static/dashboard.css", "/static/dashboard.js", "/static/favicon.svg"} <= urls
    assert "/dashboard/panel" in urls
    for url in sorted(urls):
        assert rescue.client.get(url).status_code == 200, url


def test_the_panel_is_a_fragment_of_the_page(rescue):
    html = rescue.get_html("/").text
    panel = rescue.get_html("/dashboard/panel").text

    for whole_page_only in ("<html", "<head", "<body", "<!doctype", "<script", "<main"):
        assert whole_page_only not in panel.lower()
    assert "<html" in html
    fragment = Page.of(panel)
    assert fragment.find(id="by-priority") and fragment.find(id="progress-assets")
    assert fragment.by_priority() == Page.of(html).by_priority()
    # The page embeds the same fragment in its <main>.
    assert panel.strip() in html


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("dashboard.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_static_files_are_served_with_their_content_type(api, name, content_type):
    response = api.client.get(f"/static/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    expected = resources.files("priorizer.dashboard").joinpath("static", name).read_bytes()
    assert response.content == expected


def test_static_files_load_nothing_from_elsewhere(api):
    css = api.client.get("/static/dashboard.css").text
    js = api.client.get("/static/dashboard.js").text

    for text in (css, js):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert "@import" not in css
    assert "url(" not in css
    assert "eval(" not in js
    assert api.client.get("/static/no-such-file.css").status_code == 404
