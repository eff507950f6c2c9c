"""The graph page in real headless Chromium against a real uvicorn serving meshui.asgi."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from channels_redis.core import RedisChannelLayer

from collector.graphstore import DEFAULT_WINDOW, fetch_graph
from collector.graphwriter import GraphWriter
from meshui.channel_layers import channel_layers_for
from meshui.dashboard.health import HEALTH
from tests.meshui.browser import CHROMIUM, CHROMIUM_ARGS, HAVE_CHROMIUM, meshui_server
from tests.meshui.sample_graph import write_sample_graph

pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Debian's chromium")
PAGE_JSON = re.compile(r'<script id="graph-page" type="application/json">(.*?)</script>', re.S)


@pytest.fixture
def server(redis_url: str, tmp_path: Path) -> Iterator[str]:
    with meshui_server(redis_url, tmp_path) as url:
        yield url


def publish_graph_update(redis_url: str, **extra: Any) -> None:
    """What the collector does after a flush: the current graph to group ``graph``."""
    client = redis.Redis.from_url(redis_url)
    graph = {**fetch_graph(client, DEFAULT_WINDOW), **extra}
    client.close()
    layer = RedisChannelLayer(**channel_layers_for(redis_url)["default"]["CONFIG"])

    async def send() -> None:
        await layer.group_send("graph", {"type": "graph.update", "graph": graph})
        await layer.close_pools()

    # Playwright's sync API owns this thread's event loop: publish from another thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, send()).result(timeout=10)


def test_the_graph_page_draws_services_and_updates_live_without_reload(
    server: str, redis_url: str
) -> None:
    from playwright.sync_api import sync_playwright

    write_sample_graph(redis_url, seconds=10)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(server + "/")
        page.wait_for_selector("#status.live", timeout=10000)

        drawn = page.eval_on_selector_all(".scatterlayer .textpoint text", "ts => ts.map(t => t.textContent)")
        for service in ("unknown", "frontend", "catalog", "checkout", "payments"):
            assert any(label.startswith(service) for label in drawn), drawn
        plotted = page.evaluate("document.getElementById('graph').data[1].customdata")
        assert "frontend" in plotted and len(plotted) == 11
        assert page.locator("#empty").is_hidden()

        row = page.locator('tr[data-edge="unknown->frontend"]')
        before = int(row.get_attribute("data-requests"))
        page.evaluate("window.__sameDocument = true")

        writer = GraphWriter()
        writer.add_edge("unknown", "frontend", 5000, 0, {})
        client = redis.Redis.from_url(redis_url)
        pipe = client.pipeline(transaction=False)
        GraphWriter.queue_writes(pipe, writer.take())
        pipe.execute()
        client.close()
        publish_graph_update(redis_url)

        page.wait_for_function(
            """([selector, before]) => {
                const row = document.querySelector(selector);
                return row && Number(row.dataset.requests) >= before + 5000;
            }""",
            arg=['tr[data-edge="unknown->frontend"]', before], timeout=10000)
        assert page.evaluate("window.__sameDocument") is True  # no reload happened
        browser.close()


def test_the_graph_page_shows_the_empty_state_without_traffic(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(server + "/")
        page.wait_for_selector("#status.live", timeout=10000)
        empty = page.locator("#empty")
        assert empty.is_visible()
        assert "No traffic yet" in empty.inner_text()
        assert "make demo" in empty.inner_text()
        browser.close()


def test_the_tables_are_coloured_by_the_scale_the_server_sends(server: str, redis_url: str) -> None:
    """graph.js keeps no thresholds: a page whose ``graph-page`` JSON says otherwise colours
    its rows otherwise (the JSON is rewritten on the way, as another server's would be)."""
    from playwright.sync_api import sync_playwright

    writer = GraphWriter(clock=lambda: time.time() - 1)
    for target, errors in (("clean", 0), ("flaky", 3), ("broken", 30)):
        writer.add_edge("web", target, 100, errors, {3: 100})
    client = redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    GraphWriter.queue_writes(pipe, writer.take())
    pipe.execute()
    client.close()
    # Two levels, named otherwise than the default's order: warn under 2%, bad from there.
    strict = {"levels": [{"name": "warn", "below": 0.02}, {"name": "bad", "below": None}],
              "idle": "idle"}

    def levels(page: Any) -> dict[str, str]:
        return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
            "#edges tr[data-edge]")].map((row) => [row.dataset.edge,
            row.querySelector("i.health").classList[2]]))""")

    def rewrite(route: Any) -> None:
        response = route.fetch()
        page_json = json.dumps({**json.loads(PAGE_JSON.search(response.text()).group(1)),
                                "health": strict})
        body = PAGE_JSON.sub(lambda m: m.group(0).replace(m.group(1), page_json), response.text())
        route.fulfill(response=response, body=body)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(server + "/")
        page.wait_for_selector("#status.live", timeout=10000)
        assert levels(page) == {"web->clean": "ok", "web->flaky": "warn", "web->broken": "bad"}
        legend = page.eval_on_selector_all(".legend li", "items => items.map(i => i.textContent)")
        assert legend[:4] == [item["label"] for item in HEALTH.legend()]

        # The first frame is drawn from the page itself, before the socket connects (which
        # Chromium refuses for a document a route fulfilled: its local-network checks).
        page.route(server + "/", rewrite)
        page.goto(server + "/")
        page.wait_for_selector("#edges tr[data-edge]", timeout=10000)
        assert levels(page) == {"web->clean": "warn", "web->flaky": "bad", "web->broken": "bad"}
        browser.close()
