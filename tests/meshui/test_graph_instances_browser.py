"""The graph's instance level in real headless Chromium: toggle, expand, an ejected instance out.

A real uvicorn serving meshui.asgi, a graph written as the collector writes it (per
instance), and fake sidecars (real control-channel clients) whose heartbeats carry their
balancers' reports: frontend's sidecar sends catalog-v1-0 two thirds of its calls, and
keeps catalog-v1-1 ejected.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from collector.graphwriter import GraphWriter
from tests.meshui.browser import (
    HAVE_CHROMIUM,
    chromium,
    csp_problems,
    join_tokens,
    meshui_server,
    new_page,
)
from tests.meshui.fake_sidecars import FakeSidecar, fake_sidecars
from tests.meshui.sample_graph import latency

pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Debian's chromium")

# (source, target, requests per second, median ms); the target's instances split what it served
EDGES = [("unknown", "frontend", 30, 30.0), ("frontend", "catalog", 18, 8.0),
         ("frontend", "reviews", 12, 20.0), ("catalog", "inventory", 18, 3.0)]
SERVED = {"frontend": {"frontend-v1-0": 1.0},
          "catalog": {"catalog-v1-0": 0.67, "catalog-v2-0": 0.33},  # catalog-v1-1 is ejected
          "reviews": {"reviews-v1-0": 0.5, "reviews-v2-0": 0.5},
          "inventory": {"inventory-v1-0": 1.0}}
EJECTED = "catalog-v1-1"


def write_instance_graph(redis_url: str, seconds: int = 30) -> None:
    rng = random.Random(9)
    now = time.time()
    client = redis.Redis.from_url(redis_url)
    for back in range(seconds):
        writer = GraphWriter(clock=lambda back=back: now - 1 - back)
        for src, dst, rps, median in EDGES:
            writer.add_edge(src, dst, rps, 0, latency(rps, median, rng), version="v1")
            for instance, part in SERVED[dst].items():
                n = round(rps * part)
                writer.add_node(dst, instance.split("-")[1], n, 0, latency(n, median * 0.8, rng),
                                instance=instance)
        pipe = client.pipeline(transaction=False)
        GraphWriter.queue_writes(pipe, writer.take())
        pipe.execute()
    client.close()


def sidecars(port: int) -> list[FakeSidecar]:
    def one(proxy_id: str, n: int, **extra: Any) -> FakeSidecar:
        service, version, _ = proxy_id.split("-")
        return FakeSidecar(proxy_id, service, version, port + n, **extra)

    return [
        one("frontend-v1-0", 0, ejecting=(("catalog", EJECTED),), calls={
            "catalog": {"catalog-v1-0": (24, 4.2, 1), EJECTED: (0, 61.0, 0),
                        "catalog-v2-0": (12, 6.8, 0)},
            "reviews": {"reviews-v1-0": (8, 18.5, 0), "reviews-v2-0": (8, 24.1, 2)}}),
        one("catalog-v1-0", 1, calls={"inventory": {"inventory-v1-0": (24, 2.1, 0)}}),
        one("catalog-v1-1", 2),
        one("catalog-v2-0", 3, calls={"inventory": {"inventory-v1-0": (12, 2.3, 0)}}),
        one("reviews-v1-0", 4), one("reviews-v2-0", 5), one("inventory-v1-0", 6),
    ]


@pytest.fixture
def server(redis_url: str, tmp_path: Path) -> Iterator[str]:
    with meshui_server(redis_url, tmp_path) as url:
        yield url


@pytest.fixture
def tokens(server: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    """A join token per service of ``sidecars``, from the server's own database."""
    return join_tokens(redis_url, tmp_path, {s.service for s in sidecars(0)})


def point_of(page: Any, trace: str, customdata: Any) -> tuple[float, float]:
    """Where the page draws the point of ``trace`` with ``customdata``, in page pixels."""
    return page.evaluate("""([name, wanted]) => {
        const gd = document.getElementById("graph");
        const trace = gd.data.find((t) => t.name === name);
        const i = trace.customdata.findIndex((c) => JSON.stringify(c) === JSON.stringify(wanted));
        const box = gd.getBoundingClientRect(), size = gd._fullLayout._size;
        return [box.left + size.l + gd._fullLayout.xaxis.l2p(trace.x[i]),
                box.top + size.t + gd._fullLayout.yaxis.l2p(trace.y[i])];
    }""", [trace, customdata])


def click_point(page: Any, trace: str, customdata: Any) -> None:
    """Move onto the point as a person does, and click once Plotly shows its hover label:
    Plotly picks the clicked point from the hover (a click at once may find none)."""
    page.mouse.move(*point_of(page, trace, customdata))
    page.wait_for_selector("#graph .hoverlayer .hovertext", timeout=5000)
    page.mouse.down()
    page.mouse.up()


def instances_trace(page: Any) -> dict[str, Any] | None:
    return page.evaluate("""() => {
        const t = document.getElementById("graph").data.find((t) => t.name === "instances");
        return t ? {ids: t.customdata, text: t.text, symbols: t.marker.symbol,
                    lines: t.marker.line.color} : null;
    }""")


def test_the_instances_toggle_expands_every_service_and_shows_an_ejected_instance_out(
    server: str, tokens: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    write_instance_graph(redis_url)
    with fake_sidecars(server, tokens, sidecars(9400)), chromium() as browser:
        page, console = new_page(browser)
        page.goto(server + "/")
        page.wait_for_selector("#status.live", timeout=15000)
        assert instances_trace(page) is None  # the service level until asked

        page.click("#instances-toggle")
        assert page.get_attribute("#instances-toggle", "aria-pressed") == "true"
        page.wait_for_function(
            "() => document.body.dataset.expanded === 'catalog,frontend,inventory,reviews'",
            timeout=15000)
        assert re.search(r"[?&]level=instance", page.url)

        # Live: the ejection arrives with the sidecars' heartbeats (at most 1 s apart here).
        def ejected_drawn() -> dict[str, Any] | None:
            trace = instances_trace(page)
            if trace is None:
                return None
            row = next(i for i, (name, _) in enumerate(trace["ids"]) if name == EJECTED)
            return trace if "ejected until" in trace["text"][row] else None

        page.wait_for_function("""() => {
            const t = document.getElementById("graph").data.find((t) => t.name === "instances");
            return t && t.text.some((x) => x.includes("ejected until"));
        }""", timeout=15000)
        trace = ejected_drawn()
        assert trace is not None
        by_name = {name: i for i, (name, _) in enumerate(trace["ids"])}
        out = by_name[EJECTED]
        assert trace["symbols"][out] == "circle-x"
        assert trace["lines"][out] == "#f85149"
        assert re.search(r"ejected until \d\d:\d\d:\d\d UTC", trace["text"][out])
        assert "67%" in trace["text"][by_name["catalog-v1-0"]]  # 24 of frontend's 36 calls
        assert "4.20 ms" in trace["text"][by_name["catalog-v1-0"]]
        assert "1 in flight" in trace["text"][by_name["catalog-v1-0"]]
        # The calls to the ejected instance are a dotted line, not an arrow.
        dotted = page.evaluate("""() => (document.getElementById("graph").layout.shapes || [])
            .filter((s) => s.type === "line" && s.line.dash === "dot").length""")
        assert dotted == 1
        if os.environ.get("MESHUI_SCREENSHOTS"):
            page.screenshot(path=str(Path(os.environ["MESHUI_SCREENSHOTS"]) / "graph-instances.png"))
        page.screenshot(path=str(tmp_path / "graph-instances.png"))

        # A click on the ejected instance opens its state: who ejects it, until when.
        click_point(page, "instances", [EJECTED, "catalog"])
        page.wait_for_selector("#instance-panel:not([hidden]) .ejected-note", timeout=10000)
        panel = page.inner_text("#instance-panel")
        assert EJECTED in panel and re.search(r"until \d\d:\d\d:\d\d UTC", panel)
        assert "frontend-v1-0" in panel
        link = page.get_attribute("#instance-panel a", "href")
        assert link == f"/services/catalog#instance-{EJECTED}"
        if os.environ.get("MESHUI_SCREENSHOTS"):
            page.mouse.move(5, 5)  # no hover label over the panel
            page.wait_for_timeout(300)  # the label fades out (for the picture only)
            page.screenshot(path=str(Path(os.environ["MESHUI_SCREENSHOTS"]) / "graph-instance-panel.png"))
        page.click(".instance-panel-close")

        # A click on a service's label collapses just that one; the toggle turns off.
        click_point(page, "services", "catalog")
        page.wait_for_function("() => document.body.dataset.expanded === 'frontend,inventory,reviews'",
                               timeout=15000)
        assert page.get_attribute("#instances-toggle", "aria-pressed") == "false"
        assert "expand=frontend%2Cinventory%2Creviews" in page.url or \
            "expand=frontend,inventory,reviews" in page.url

        # A reload keeps the view (it is in the URL), drawn in the first frame already.
        page.reload()
        page.wait_for_selector("#status.live", timeout=15000)
        page.wait_for_function("() => document.body.dataset.expanded === 'frontend,inventory,reviews'",
                               timeout=15000)
        assert csp_problems(page, console) == []


def test_a_click_on_a_node_expands_only_that_service(server: str, tokens: dict[str, str],
                                                    redis_url: str) -> None:
    write_instance_graph(redis_url)
    with fake_sidecars(server, tokens, sidecars(9500)), chromium() as browser:
        page, console = new_page(browser)
        page.goto(server + "/")
        page.wait_for_selector("#status.live", timeout=15000)
        click_point(page, "services", "reviews")
        page.wait_for_function("() => document.body.dataset.expanded === 'reviews'", timeout=15000)
        trace = instances_trace(page)
        assert trace is not None
        assert [name for name, _ in trace["ids"]] == ["reviews-v1-0", "reviews-v2-0"]
        assert all("50%" in text for text in trace["text"])  # frontend splits 8 and 8
        assert csp_problems(page, console) == []

        # The panel's link leads to the instance's row on its service page, highlighted.
        click_point(page, "instances", ["reviews-v2-0", "reviews"])
        page.wait_for_selector("#instance-panel:not([hidden]) .kv-grid", timeout=10000)
        assert "2" in page.inner_text("#instance-panel .kv-grid")  # 2 in flight from frontend
        page.click("#instance-panel a")
        page.wait_for_url(server + "/services/reviews#instance-reviews-v2-0", timeout=10000)
        page.wait_for_selector("tr#instance-reviews-v2-0.linked", timeout=10000)
        assert csp_problems(page, console) == []
