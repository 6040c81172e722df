"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against a
real `priorizer serve` with data. Screenshots are saved under the test's tmp_path (and copied to
$DASHBOARD_SCREENSHOTS when it is set)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import PriorizerServer, describe, run_cli

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
        figures = phone.page.locator("dl.figures").bounding_box()
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
