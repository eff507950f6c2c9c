"""Screenshots of the trace pages for review: ``python -m tests.meshui.trace_screenshots OUT_DIR``.

Starts its own Valkey and meshui, stores the sample traces (tests/meshui/sample_traces.py)
through the real store path, logs in as a viewer and shoots the search page, a waterfall
with a span opened, and the not-found state (docs/ui.md, "Traces")."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from tests.meshui.browser import CHROMIUM, CHROMIUM_ARGS, meshui_server
from tests.meshui.conftest import StoppableRedis
from tests.meshui.sample_traces import SampleTrace, hex_id, write_sample_traces

PASSWORD = "screenshot-password"


def login(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(url + "/accounts/login/")
    page.fill("input[name=username]", "victor")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    return page


def shoot(url: str, out: Path, traces: list[SampleTrace]) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = login(browser, url)
        page.goto(url + "/traces")
        page.wait_for_selector("#trace-table tbody tr", timeout=15000)
        page.wait_for_timeout(500)
        slowest = max(traces, key=lambda t: t.duration_ms)
        curve, index = page.evaluate("""(id) => {
            const data = document.getElementById('scatter').data;
            const c = data.findIndex((d) => d.customdata.includes(id));
            return [c, data[c].customdata.indexOf(id)];
        }""", slowest.trace_id)
        box = page.locator("#scatter .scatterlayer .trace").nth(curve).locator("path.point") \
            .nth(index).bounding_box()
        if box:  # hover the slowest trace's dot
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_timeout(400)
        page.screenshot(path=str(out / "traces.png"))

        page.goto(url + "/traces?service=catalog&min_ms=1000&last=900")
        page.wait_for_selector("#empty:not([hidden])", timeout=15000)
        page.screenshot(path=str(out / "traces-empty.png"))

        page.goto(url + f"/traces/{traces[20].trace_id}")  # trace 21: catalog fails, is retried, fails again
        page.wait_for_selector(".wf-row", timeout=15000)
        page.locator('.wf-row[data-kind="client"]').first.click()
        page.wait_for_selector(".wf-detail")
        page.wait_for_timeout(300)
        page.screenshot(path=str(out / "trace.png"), full_page=True)

        page.goto(url + f"/traces/{'ab' * 16}")
        page.wait_for_selector('#trace-state[data-state="not-found"]', timeout=15000)
        page.screenshot(path=str(out / "trace-not-found.png"))
        browser.close()


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    valkey = StoppableRedis()
    try:
        traces = write_sample_traces(valkey.url, now=time.time())
        with tempfile.TemporaryDirectory() as work, meshui_server(
                valkey.url, Path(work), users={"victor": "viewer"}, MESHUI_USER_PASSWORD=PASSWORD,
                MESHUI_PUBLIC_READ="false",
                MESHUI_TRACE_LINK_TEMPLATE="http://jaeger:16686/trace/{trace_id}") as url:
            shoot(url, out, traces)
    finally:
        valkey.close()
    print("trace 1:", hex_id(1))


if __name__ == "__main__":
    main(sys.argv[1])
