"""Headless Chromium on the live dashboard of the real demo mesh."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.e2e.conftest import RunningMesh
from tests.e2e.test_mesh import send

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SHOP = {"frontend", "catalog", "inventory", "reviews", "ratings", "checkout", "payments"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_the_graph_page_draws_the_shop_and_counts_live(demo_mesh: RunningMesh,
                                                       browser: Browser) -> None:
    send(demo_mesh, 4, path="/product/42")
    send(demo_mesh, 2, path="/")
    send(demo_mesh, 2, method="POST", path="/checkout")
    demo_mesh.wait_for(lambda: SHOP <= {n["id"] for n in demo_mesh.graph(60)["nodes"]},
                       what="every shop service in the graph API")
    page = browser.new_page(viewport={"width": 1400, "height": 900})

    page.goto(demo_mesh.config.dashboard_url)
    for service in sorted(SHOP):
        page.wait_for_selector(f'[data-node="{service}"]', timeout=10_000)
    drawn = page.evaluate(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot text'))"
        ".map(t => t.textContent)")
    assert all(any(service in label for label in drawn) for service in SHOP), drawn

    row = page.locator('[data-edge="unknown->frontend"]')
    before = int(row.get_attribute("data-requests"))
    page.evaluate("() => { window.__sameDocument = true; }")
    send(demo_mesh, 3, path="/")

    page.wait_for_function(
        "before => Number(document.querySelector('[data-edge=\"unknown->frontend\"]')"
        ".dataset.requests) > before", arg=before, timeout=10_000)
    assert page.evaluate("() => window.__sameDocument === true"), "the page reloaded"
    page.close()
