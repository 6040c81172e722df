"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against a
real `priorizer serve` with data. Screenshots are saved under the test's tmp_path (and copied to
$DASHBOARD_SCREENSHOTS when it is set)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from itertools import combinations, pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.priorizer_server import PriorizerServer, describe, run_cli

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "SKIPPED LOUDLY: Debian's chromium is not installed (apt-get install chromium; "
        ".ci/run installs it), so the dashboard is not tested in a browser",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

# Every figure the dashboard shows from /status, by its name there.
STATUS_KEYS = (
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


class Watched:
    """A page, with every request it made and every error it logged (a CSP violation is one)."""

    def __init__(self, browser: Browser, **context: Any) -> None:
        self.context = browser.new_context(**context)
        self.page: Page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def shown(self) -> dict[str, tuple[str, str]]:
        """Each status figure on the page: (data-value, the text shown)."""
        pairs = self.page.eval_on_selector_all(
            "[data-status]",
            "els => els.map(e => [e.dataset.status, e.dataset.value, e.textContent.trim()])",
        )
        return {key: (value, text) for key, value, text in pairs}


def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, "the screenshot is (nearly) blank"
    if os.environ.get("DASHBOARD_SCREENSHOTS"):
        target = Path(os.environ["DASHBOARD_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


def make_activity(client: httpx.Client) -> None:
    """Three nodes lease work; two copies complete (one asset twice), one download fails."""
    leased = {}
    for node in ("node-a", "node-b", "node-c"):
        response = client.post("/allocate", json={"node_id": node, "free_space_gb": 0.5})
        assert response.status_code == 200, response.text
        leased[node] = [asset["id"] for asset in response.json()]
    assert all(leased.values()), leased
    pairs = [(x, y) for x, y in combinations(sorted(leased), 2) if set(leased[x]) & set(leased[y])]
    assert pairs, "two nodes should share an asset under target 2"
    first, second = pairs[0]
    shared = sorted(set(leased[first]) & set(leased[second]))[0]
    for node in (first, second):
        done = client.post("/complete", json={"node_id": node, "asset_id": shared})
        assert done.status_code == 200, done.text
    [third] = set(leased) - {first, second}
    lost = next(asset_id for asset_id in leased[third] if asset_id != shared)
    failed = client.post("/fail", json={"node_id": third, "asset_id": lost, "reason": "HTTP 404"})
    assert failed.status_code == 200, failed.text


def maintain(server: PriorizerServer) -> None:
    cycle = run_cli(["maintain"], server.env)
    assert cycle.returncode == 0, describe(cycle)


def test_dashboard_shows_status_figures_charts_and_only_loads_from_the_server(
    tmp_path: Path, browser: Browser
) -> None:
    server = PriorizerServer(tmp_path, {"DASHBOARD_REFRESH_SECONDS": "1"}, args=["--demo"])
    with server, server.client() as client:
        # Two cycles to chart; the second counts the lease outcomes since the first.
        maintain(server)
        make_activity(client)
        maintain(server)
        watched = Watched(browser, viewport={"width": 1280, "height": 900})
        watched.page.goto(server.base_url + "/")
        status = client.get("/status").json()
        shown = watched.shown()

        # The same numbers as /status, in the attribute and in the text a person reads.
        assert status["assets_at_target"] == 1 and status["copies"] == 2, status
        for key in STATUS_KEYS:
            value, text = shown[key]
            assert int(value) == status[key], (key, value, status[key])
            assert int(text.replace(",", "")) == status[key], (key, text)
        assert shown["system_health"][0] == status["system_health"]

        # The priority chart: one column per base priority with assets, as tall as its count.
        distribution: dict[str, int] = {}
        for asset in client.get("/assets", params={"limit": 1000}).json()["items"]:
            key = str(asset["base_priority"])
            distribution[key] = distribution.get(key, 0) + 1
        columns = watched.page.locator("#priority-chart rect")
        assert columns.count() == len(distribution)
        heights = {}
        for i in range(columns.count()):
            column = columns.nth(i)
            box = column.bounding_box()
            assert box is not None and box["height"] > 0 and box["width"] > 0
            label = column.get_attribute("data-column")
            assert int(float(column.get_attribute("data-value") or 0)) == distribution[label]
            heights[label] = box["height"]
        tallest = max(distribution, key=lambda k: distribution[k])
        for label, height in heights.items():
            expected = heights[tallest] * distribution[label] / distribution[tallest]
            assert abs(height - expected) <= 1.5, (label, height, expected)

        # The overall progress bar: the part at the target is as wide as its share.
        bar = watched.page.locator("#progress-assets svg.bar")
        whole = bar.bounding_box()
        done = watched.page.locator('#progress-assets rect[data-part="at target"]').bounding_box()
        assert whole is not None and done is not None
        share = status["assets_at_target"] / status["assets"]
        assert abs(done["width"] - whole["width"] * share) <= 1.5
        assert watched.page.locator("#nodes tr[data-node]").count() == 3
        assert watched.page.locator("#cycle-chart rect").count() >= 2
        outcomes = watched.page.locator("#outcome-chart rect")
        drawn = {outcomes.nth(i).get_attribute("class") for i in range(outcomes.count())}
        assert drawn == {"done", "failed"}, drawn
        # One cycle of outcomes is one slim column at the right, on a scale that says 4 leases
        # (2 completed, 1 failed), not a block filling the chart.
        chart = watched.page.locator("#outcome-chart svg").bounding_box()
        column = [outcomes.nth(i).bounding_box() for i in range(outcomes.count())]
        assert chart is not None and all(box is not None for box in column)
        assert all(box["width"] <= chart["width"] / 30 + 1 for box in column if box), column
        assert all(box["x"] > chart["x"] + chart["width"] * 0.9 for box in column if box)
        assert watched.page.text_content("#outcome-chart [data-tick=top]") == "4"
        tallest = sum(box["height"] for box in column if box)
        assert abs(tallest - chart["height"] * 3 / 4) <= 2, (tallest, chart)
        # The failed download is listed with its reason.
        failing = watched.page.locator("#failing tr[data-asset]")
        assert failing.count() == 1
        assert watched.page.text_content("#failing [data-trouble=note]") == "HTTP 404"
        screenshot(watched.page, tmp_path, "dashboard-wide.png")

        # It refreshes itself: new work shows up without a reload.
        more = client.post("/allocate", json={"node_id": "node-d", "free_space_gb": 0.5})
        assert more.status_code == 200 and more.json()
        watched.page.wait_for_function(
            "n => document.querySelector('[data-status=nodes]').dataset.value === String(n)",
            arg=4,
            timeout=15_000,
        )
        after = client.get("/status").json()
        assert int(watched.shown()["active_allocations"][0]) == after["active_allocations"]

        assert watched.errors == [], watched.errors
        outside = [url for url in watched.requests if not url.startswith(server.base_url + "/")]
        assert outside == [], outside
        assert any(url.endswith("/dashboard/panel") for url in watched.requests)
        watched.context.close()


def test_timelines_read_well_after_many_cycles(tmp_path: Path, browser: Browser) -> None:
    """The scheduler runs a cycle every 0.4 s while nodes work: past 30 cycles, both charts
    hold 30 columns whose labels never overlap, on a round scale above the tallest."""
    env = {"AUTO_UPDATE_INTERVAL_MINUTES": str(0.4 / 60), "DASHBOARD_REFRESH_SECONDS": "60"}
    server = PriorizerServer(tmp_path, env, args=["--demo"])
    with server, server.client() as client:
        cycles = 0
        for round_ in range(200):
            node = f"node-{round_ % 7}"
            leased = client.post("/allocate", json={"node_id": node, "free_space_gb": 0.05})
            assert leased.status_code == 200, leased.text
            for number, item in enumerate(leased.json()[: 1 + round_ % 4]):
                action = "/complete" if number % 3 else "/release"
                done = client.post(action, json={"node_id": node, "asset_id": item["id"]})
                assert done.status_code == 200, done.text
            cycles = len(client.get("/maintenance/runs", params={"limit": 40}).json())
            if cycles >= 34:
                break
            time.sleep(0.1)  # let the server's own scheduler run cycles between the work
        assert cycles >= 34, cycles
        watched = Watched(browser, viewport={"width": 1280, "height": 900})
        watched.page.goto(server.base_url + "/")
        for chart_id in ("cycle-chart", "outcome-chart"):
            rects = watched.page.locator(f"#{chart_id} rect")
            columns = {rects.nth(i).get_attribute("x") for i in range(rects.count())}
            assert 20 <= len(columns) <= 30, (chart_id, columns)
            labels = watched.page.locator(f"#{chart_id} .slot-labels span span")
            boxes = [labels.nth(i).bounding_box() for i in range(labels.count())]
            shown = [box for box in boxes if box is not None and box["width"] > 0]
            assert 2 <= len(shown) <= 6, (chart_id, shown)
            for left, right in pairwise(shown):
                assert left["x"] + left["width"] < right["x"], (chart_id, left, right)
            top = float(
                (watched.page.text_content(f"#{chart_id} [data-tick=top]") or "0")
                .replace(",", "")
                .replace(" ms", "e-3")
                .replace(" s", "")
            )
            values = [
                float(rects.nth(i).get_attribute("data-value") or 0) for i in range(rects.count())
            ]
            assert top > 0 and max(values) <= top * 1.0001, (chart_id, top, max(values))
        screenshot(watched.page, tmp_path, "dashboard-many-cycles.png")
        assert watched.errors == [], watched.errors
        watched.context.close()


def test_dashboard_reads_well_on_a_phone(tmp_path: Path, browser: Browser) -> None:
    server = PriorizerServer(tmp_path, args=["--demo"])
    with server, server.client() as client:
        make_activity(client)
        phone = Watched(
            browser,
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
        )
        phone.page.goto(server.base_url + "/")
        # Nothing wider than the screen but the tables, which scroll inside their own box.
        overflow = phone.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
        boxes = phone.page.locator("dl.figures")
        assert boxes.count() >= 2  # the catalog's figures and discovery's
        for n in range(boxes.count()):
            figures = boxes.nth(n).bounding_box()
            assert figures is not None and figures["width"] <= 390
        screenshot(phone.page, tmp_path, "dashboard-phone.png")
        assert phone.errors == [], phone.errors
        phone.context.close()


def test_dashboard_says_when_the_server_stops_answering(tmp_path: Path, browser: Browser) -> None:
    server = PriorizerServer(tmp_path, {"DASHBOARD_REFRESH_SECONDS": "0.5"}, args=["--demo"])
    with server:
        watched = Watched(browser)
        watched.page.goto(server.base_url + "/")
        before = watched.shown()["assets"]
    # The server is gone: the page keeps its figures and marks them stale.
    watched.page.wait_for_selector("#refresh-state.stale", timeout=10_000)
    assert watched.shown()["assets"] == before
    assert "failed" in (watched.page.text_content("#updated-at") or "")
    watched.context.close()


def operation_ids(client: httpx.Client) -> set[str]:
    schema = client.get("/openapi.json").json()
    return {op["operationId"] for path in schema["paths"].values() for op in path.values()}


def test_the_api_docs_render_every_operation_with_no_internet(
    tmp_path: Path, browser: Browser
) -> None:
    server = PriorizerServer(tmp_path)
    with server, server.client() as client:
        expected = operation_ids(client)
        watched = Watched(browser, viewport={"width": 1280, "height": 900})
        # As on a machine with no internet: whatever is not the server's own fails.
        watched.context.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(server.base_url + "/")
                else route.abort()
            ),
        )
        watched.page.goto(server.base_url + "/docs")
        # Swagger UI draws one block per operation, id "operations-<tag>-<operation id>".
        watched.page.wait_for_selector(".opblock[id^=operations-]", timeout=20_000)
        shown = watched.page.eval_on_selector_all(
            ".opblock[id^=operations-]", "els => els.map(e => e.id.split('-').slice(2).join('-'))"
        )
        screenshot(watched.page, tmp_path, "api-docs.png")

        assert set(shown) == expected, set(shown) ^ expected
        outside = [url for url in watched.requests if not url.startswith(server.base_url + "/")]
        assert outside == [], outside
        assert watched.errors == [], watched.errors
        watched.context.close()
