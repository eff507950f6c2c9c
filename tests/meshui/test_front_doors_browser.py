"""Issue 6 in real Chromium: hostile names stay text, no page breaks the CSP, the data-source
banner comes and goes with Redis, and the page says when the node cap hides services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

from collector.graphwriter import GraphWriter
from meshui.dashboard.figure import clip
from tests.meshui.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HAVE_CHROMIUM,
    csp_problems,
    meshui_server,
    new_page,
)
from tests.meshui.conftest import StoppableRedis
from tests.meshui.test_graph_page_browser import publish_graph_update

pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Debian's chromium")

ADMIN_PASSWORD = "browser-admin-password"
HOSTILE = [
    "<a href='https://evil.example/'>click me</a>",
    '<span style="font-size:90px">BIG</span>',
    '<img src=x onerror="window.__xss=1">',
    "</script><script>window.__xss=2</script>",
    "\"q\" & 'amp' $x$",
]


def write_hostile_graph(redis_url: str) -> None:
    writer = GraphWriter()
    previous = "frontend"
    for name in HOSTILE:
        writer.add_edge(previous, name, 50, 1, {})
        writer.add_node(name, f"v1{name[:12]}", 50, 1, {})
        previous = name
    client = redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    GraphWriter.queue_writes(pipe, writer.take())
    pipe.execute()
    client.close()


@pytest.fixture(scope="module")
def page_redis() -> Iterator[StoppableRedis]:
    server = StoppableRedis()
    yield server
    server.close()


@pytest.fixture(scope="module")
def server(page_redis: StoppableRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with meshui_server(page_redis.url, tmp_path_factory.mktemp("meshui"),
                       MESHUI_USER_PASSWORD=ADMIN_PASSWORD) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_hostile_service_names_show_as_literal_text_never_as_markup(
    server: str, page_redis: StoppableRedis, browser: Any
) -> None:
    redis.Redis.from_url(page_redis.url).flushdb()
    write_hostile_graph(page_redis.url)
    page, console = new_page(browser)
    page.goto(server + "/")
    page.wait_for_selector("#status.live", timeout=10000)
    page.wait_for_function("document.querySelectorAll('.scatterlayer .textpoint text').length >= 6")

    graph = page.locator("#graph")
    assert graph.locator("a").count() == 0  # Plotly would draw <a href> as an SVG link
    assert page.locator('#graph [style*="90px"]').count() == 0
    assert page.locator("img").count() == 0
    assert page.evaluate("window.__xss") is None
    labels = page.eval_on_selector_all(".scatterlayer .textpoint text",
                                       "ts => ts.map(t => t.textContent)")
    for name in HOSTILE:
        assert clip(name) in labels or any(label.startswith(clip(name)) for label in labels), (
            name, labels)

    # Hover text: Plotly's hover label of a hostile node, read from the SVG it draws.
    index = page.evaluate(f"document.getElementById('graph').data[1].customdata.indexOf({HOSTILE[0]!r})")
    page.evaluate(f"Plotly.Fx.hover('graph', [{{curveNumber: 1, pointNumber: {index}}}])")
    page.wait_for_selector(".hoverlayer .hovertext", timeout=5000)
    hover = page.locator(".hoverlayer .hovertext").first.text_content()
    assert hover.startswith(HOSTILE[0]) and "versions: v1<a href='htt0" in hover
    assert page.locator(".hoverlayer a").count() == 0

    # The side tables show the names as text too.
    table = page.locator("#nodes").inner_text()
    for name in HOSTILE:
        assert name in table
    # The only links are the page's own, one per service to its page, the name as text.
    links = page.eval_on_selector_all("#nodes a, #edges a", """links => links.map((a) =>
        [a.className, a.getAttribute("href"), a.textContent])""")
    services = page.eval_on_selector_all("#nodes tr[data-node]", "rows => rows.map((r) => r.dataset.node)")
    # encodeURIComponent's escaping: everything but letters, digits and -_.!~*'()
    assert sorted(links) == sorted(
        ["service-link", "/services/" + quote(name, safe="-_.!~*'()"), name] for name in services)
    assert page.locator("#nodes span[style], #edges img").count() == 0
    assert csp_problems(page, console) == []


def test_no_page_reports_a_csp_violation(server: str, page_redis: StoppableRedis,
                                         browser: Any) -> None:
    write_hostile_graph(page_redis.url)
    page, console = new_page(browser)
    for path in ("/", "/accounts/login/", "/admin/login/", "/api/v1/docs"):
        page.goto(server + path)
        page.wait_for_load_state("load")
        if path == "/":
            page.wait_for_selector("#status.live", timeout=10000)
            page.mouse.move(700, 400)  # hover: Plotly injects styles for its hover layer
        assert csp_problems(page, console) == [], path
    # Logged in: the admin index, then the graph page again as a user.
    page.goto(server + "/accounts/login/?next=/admin/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server + "/admin/")
    assert csp_problems(page, console) == [], "/admin/"
    page.goto(server + "/")
    page.wait_for_selector("#status.live", timeout=10000)
    assert csp_problems(page, console) == [], "/ logged in"


def test_the_api_docs_list_every_endpoint_and_try_one_out_under_the_csp(
    server: str, browser: Any, tmp_path: Path
) -> None:
    page, console = new_page(browser)
    page.goto(server + "/api/v1/docs")
    page.wait_for_selector(".opblock", timeout=10000)
    paths = page.eval_on_selector_all(".opblock-summary-path", "ps => ps.map(p => p.textContent)")
    schema = page.request.get(server + "/api/v1/openapi.json").json()
    assert sorted({p.replace("\u200b", "") for p in paths}) == sorted(schema["paths"])
    assert {"/api/v1/graph", "/api/v1/policy/validate", "/api/v1/policy/marks"} <= set(
        schema["paths"])
    # Swagger UI and its styles came from our own /static/, nothing from another origin.
    loaded = page.evaluate("performance.getEntriesByType('resource').map(r => r.name)")
    assert loaded and all(url.startswith(server) for url in loaded), loaded

    # Try GET /api/v1/graph from the page: the request and its 200 go through the same CSP.
    operation = page.locator("#operations-graph-getGraph")
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    operation.locator(".execute").click()
    status = operation.locator(".live-responses-table td.response-col_status:not(.col_header)")
    status.wait_for(timeout=10000)
    assert status.inner_text().strip() == "200"
    page.screenshot(path=str(tmp_path / "api-docs.png"), full_page=True)
    assert csp_problems(page, console) == []


def test_the_page_says_when_the_node_cap_hides_services(
    server: str, page_redis: StoppableRedis, browser: Any
) -> None:
    page, _ = new_page(browser)
    page.goto(server + "/")
    page.wait_for_selector("#status.live", timeout=10000)
    assert page.locator("#hidden-note").is_hidden()
    publish_graph_update(page_redis.url, hidden={"nodes": 37, "edges": 80})
    page.wait_for_selector("#hidden-note:not([hidden])", timeout=10000)
    shown = page.evaluate("document.getElementById('graph').data[1].customdata.length")
    assert page.locator("#hidden-note").inner_text() == (
        f"37 more services hidden (showing the busiest {shown})")
    publish_graph_update(page_redis.url, hidden={"nodes": 0, "edges": 0})
    page.wait_for_selector("#hidden-note[hidden]", state="attached", timeout=10000)


@pytest.fixture
def outage_redis() -> Iterator[StoppableRedis]:
    server = StoppableRedis()
    yield server
    server.close()


def test_the_data_source_banner_appears_while_redis_is_down_and_goes_away_by_itself(
    outage_redis: StoppableRedis, tmp_path: Path, browser: Any
) -> None:
    with meshui_server(outage_redis.url, tmp_path) as url:
        page, console = new_page(browser)
        page.goto(url + "/")
        page.wait_for_selector("#status.live", timeout=10000)
        assert page.locator("#source-down").is_hidden()
        page.evaluate("window.__sameDocument = true")

        outage_redis.stop()
        page.wait_for_selector("#source-down:not([hidden])", timeout=5000)
        banner = page.locator("#source-down").inner_text()
        assert "Data source down." in banner and "Redis" in banner
        assert page.locator("#status").inner_text() == "data source down"

        outage_redis.start()
        page.wait_for_selector("#source-down[hidden]", state="attached", timeout=5000)
        page.wait_for_selector("#status.live", timeout=5000)
        assert page.evaluate("window.__sameDocument") is True  # recovered without a reload

        # A page opened while Redis is down shows the banner from its first paint.
        outage_redis.stop()
        fresh, _ = new_page(browser)
        fresh.goto(url + "/")
        assert fresh.locator("#source-down").is_visible()
        outage_redis.start()
        fresh.wait_for_selector("#source-down[hidden]", state="attached", timeout=5000)
        assert csp_problems(page, console) == []
        fresh.close()
        page.close()
