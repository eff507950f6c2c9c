"""An edge's detail view in real Chromium against a real uvicorn: its live heatmap gains a new
column without a reload, a cell lists its exemplar traces, and one opens on its waterfall."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import expect

from collector import seriesstore
from collector.graphstore import key_for
from collector.graphwriter import GraphWriter
from collector.records import Exemplar
from proxies.telemetry import histogram
from tests.meshui.browser import HAVE_CHROMIUM, chromium, csp_problems, meshui_server, new_page
from tests.meshui.sample_traces import hex_id, shop_trace, store
from tests.polling import wait_until

pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Debian's chromium")

SLOW_TRACE = 700


def write_edge(redis_url: str, seconds: list[int], exemplar: tuple[int, str] | None = None) -> None:
    """frontend -> catalog: 20 fast calls a second, and at ``exemplar``'s second one slow call
    (850 ms) whose trace is ``exemplar``'s id, as a collector's flush writes them."""
    clock = {"now": 0.0}
    writer = GraphWriter(clock=lambda: clock["now"])
    fast, slow = histogram.bucket_index(4.0), histogram.bucket_index(850.0)
    for second in seconds:
        clock["now"] = second + 0.5
        writer.add_edge("frontend", "catalog", 20, 0, {fast: 20}, version="v1")
        writer.add_node("catalog", "v1", 20, 0, {fast: 20}, instance="catalog-1")
        if exemplar and second == exemplar[0]:
            found = [(slow, Exemplar(exemplar[1], "00000000000000aa", 850.0, second + 0.9))]
            writer.add_edge("frontend", "catalog", 1, 0, {slow: 1}, version="v1", exemplars=found)
    client = redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    increments = writer.take()
    for second, fields in increments.items():
        for name, value in fields.items():
            pipe.hincrby(key_for(second), name, value)
    for key, fields in seriesstore.series_increments(increments).items():
        for name, value in fields.items():
            pipe.hincrby(key, name, value)
    for key, texts in writer.take_exemplars().items():
        pipe.hset(key, mapping=texts)
    pipe.execute()
    client.close()


@pytest.fixture
def server(redis_url: str, tmp_path: Path) -> Iterator[str]:
    with meshui_server(redis_url, tmp_path) as url:
        yield url


def cell_point(page: Any, start: float, low_ms: float) -> tuple[float, float]:
    """Where Plotly drew the heatmap cell around epoch second ``start`` (its middle) and the
    row holding ``low_ms``."""
    return page.evaluate("""([start, lowMs]) => {
        const gd = document.querySelector('#edge-detail-panel .heatmap');
        const trace = gd.data[0], layout = gd._fullLayout, size = layout._size;
        const gaps = trace.x.map((x) => Math.abs(new Date(x).getTime() / 1000 - start));
        const column = gaps.indexOf(Math.min(...gaps));
        const box = gd.getBoundingClientRect();
        const bounds = window.__panelHeatmap.buckets_ms;
        let row = 0;
        while (row + 1 < bounds.length && bounds[row + 1] <= lowMs) row += 1;
        return [box.left + size.l + layout.xaxis.l2p(layout.xaxis.d2l(trace.x[column])),
                box.top + size.t + layout.yaxis.l2p(row + 0.5)];
    }""", [start, low_ms])


def test_an_edge_heatmap_is_live_and_a_slow_cell_opens_its_trace(server: str, redis_url: str) -> None:
    now = int(time.time())
    slow_second = now - 40
    store(redis_url, *shop_trace(SLOW_TRACE, slow_second - 0.5))
    write_edge(redis_url, list(range(now - 120, now)), exemplar=(slow_second, hex_id(SLOW_TRACE)))

    with chromium() as browser:
        page, console = new_page(browser)
        page.add_init_script("""(() => {  // the panel's last heatmap, for the test's arithmetic
            const fetch0 = window.fetch;
            window.fetch = async (...args) => {
                const answer = await fetch0(...args);
                if (String(args[0]).startsWith('/api/v1/heatmap')) {
                    answer.clone().json().then((b) => { window.__panelHeatmap = b; });
                }
                return answer;
            };
        })()""")
        page.goto(server + "/#edge=frontend,catalog")
        expect(page.locator("#edge-detail")).to_be_visible()
        expect(page.locator("#edge-detail-title")).to_have_text("frontend → catalog")
        panel = page.locator("#edge-detail-panel")
        # 5 min at 5 s: 61 columns, 60 when the window starts on a multiple of 5
        expect(panel).to_have_attribute("data-columns", re.compile(r"^6[01]$"), timeout=15000)
        page.locator("#edge-detail-panel .heatmap .heatmaplayer").first.wait_for(state="attached")
        # The numbers: the caller's latency, and a chart per golden metric.
        expect(page.locator('#edge-detail-numbers [data-stat="Requests"]')).not_to_have_text("–")
        assert page.locator("#edge-detail-panel .chart .main-svg").count() >= 4
        before = int(panel.get_attribute("data-last-column"))
        page.evaluate("window.__sameDocument = true")

        # Traffic keeps coming: a later column shows up by itself.
        def new_column() -> bool:
            write_edge(redis_url, [int(time.time()) - 1])
            return int(panel.get_attribute("data-last-column")) > before
        wait_until(new_column, timeout=30, interval=1, what="a new heatmap column")
        assert page.evaluate("window.__sameDocument") is True
        last = page.evaluate("""() => {
            const z = document.querySelector('#edge-detail-panel .heatmap').data[0].z;
            return z.some((row) => row[row.length - 1] || row[row.length - 2]); }""")
        assert last, "the new column holds the new requests"

        # The slow cell lists its exemplar; it opens the trace's waterfall. The heatmap moves
        # left by a column every 5 s: a click that lands as it moves is made again.
        column_start = slow_second - slow_second % 5
        cell = page.locator("#edge-detail-panel .cell-traces")
        link = cell.locator(f'li[data-trace="{hex_id(SLOW_TRACE)}"] a.trace-link')

        def click_slow_cell() -> bool:
            page.mouse.click(*cell_point(page, column_start + 2.5, 850.0))
            return link.count() == 1
        wait_until(click_slow_cell, timeout=20, interval=0.5, what="the slow cell's exemplar")
        assert re.search(r"(^|[^0-9])1 request([^s]|$)", cell.inner_text()), cell.inner_text()
        assert "724 ms–1.0 s" in cell.inner_text()
        expect(link).to_contain_text("850")
        link.click()
        page.wait_for_url(f"**/traces/{hex_id(SLOW_TRACE)}")
        page.wait_for_selector(".wf-row")
        assert page.locator(".wf-row").count() >= 5
        assert csp_problems(page, console) == []
