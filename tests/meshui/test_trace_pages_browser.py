"""The trace pages in real Chromium against a real uvicorn, with traces written through the real
store path (connector -> exporter -> Redis): search, scatter and table, the waterfall of
frontend -> catalog -> inventory with its retry and its network, hostile names, the states."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.collector.trace_build import INTERNAL, SERVER, S
from tests.meshui.browser import HAVE_CHROMIUM, chromium, csp_problems, meshui_server, new_page
from tests.meshui.conftest import StoppableRedis
from tests.meshui.sample_traces import (
    HOSTILE_NAME,
    SampleTrace,
    hex_id,
    hostile_trace,
    shop_trace,
    store,
    write_sample_traces,
)

pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Debian's chromium")

PASSWORD = "trace-pages-password"
LINK = "http://jaeger:16686/trace/{trace_id}"
NOW = time.time()
RETRIED = 500  # the trace whose waterfall the tests read: frontend -> catalog (retried) -> inventory
HOSTILE = 501
WIDE = 502  # 10,000 spans
BIG = 10_000


@pytest.fixture(scope="module")
def page_redis() -> Iterator[StoppableRedis]:
    server = StoppableRedis()
    yield server
    server.close()


def wide_trace() -> list[S]:
    """One request fanned out to 9,999 steps: the store's most spans in one trace."""
    return [S("gateway", WIDE, 1, kind=SERVER, name="GET /batch", start_s=NOW - 900, ms=500)] + [
        S(f"worker-{i % 5}", WIDE, i, parent=max(1, i // 4), kind=INTERNAL, name=f"step {i}",
          start_s=NOW - 900 + i / 40_000, ms=1) for i in range(2, BIG + 1)]


@pytest.fixture(scope="module")
def samples(page_redis: StoppableRedis) -> list[SampleTrace]:
    """Every stored trace: twelve samples over the last 10 minutes, then three older ones."""
    written = write_sample_traces(page_redis.url, now=NOW, count=12)
    store(page_redis.url, *shop_trace(RETRIED, NOW - 700))
    store(page_redis.url, *hostile_trace(HOSTILE, NOW - 800))
    store(page_redis.url, *wide_trace())
    return [*written, SampleTrace(hex_id(RETRIED), 40.0, True, True, NOW - 700),
            SampleTrace(hex_id(HOSTILE), 8.0, False, False, NOW - 800),
            SampleTrace(hex_id(WIDE), 500.0, False, False, NOW - 900)]


def newest_first(traces: list[SampleTrace]) -> list[str]:
    return [t.trace_id for t in sorted(traces, key=lambda t: -t.start_s)]


@pytest.fixture(scope="module")
def server(page_redis: StoppableRedis, samples: list[SampleTrace],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with meshui_server(page_redis.url, tmp_path_factory.mktemp("meshui"), users={"victor": "viewer"},
                       MESHUI_USER_PASSWORD=PASSWORD, MESHUI_PUBLIC_READ="false",
                       MESHUI_TRACE_LINK_TEMPLATE=LINK) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def logged_in(browser: Any, server: str) -> tuple[Any, list[str]]:
    """A viewer's page; its console also records every dialog a script opened."""
    page, console = new_page(browser)
    page.on("dialog", lambda d: (console.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(server + "/accounts/login/")
    page.fill("input[name=username]", "victor")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")
    return page, console


def row_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all("#trace-table tbody tr", "rows => rows.map(r => r.dataset.traceId)")


def dot_center(page: Any, trace_id: str) -> tuple[float, float]:
    """Where Plotly drew ``trace_id``'s dot: the centre of its SVG point."""
    curve, index = page.evaluate("""(id) => {
        const gd = document.getElementById('scatter');
        for (let c = 0; c < gd.data.length; c++) {
            const i = gd.data[c].customdata.indexOf(id);
            if (i >= 0) return [c, i];
        }
        return [-1, -1];
    }""", trace_id)
    assert curve >= 0, f"no dot for {trace_id}"
    point = page.locator("#scatter .scatterlayer .trace").nth(curve).locator("path.point").nth(index)
    box = point.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_the_search_shows_a_dot_and_a_row_per_trace_and_a_click_on_a_dot_opens_it(
        server: str, browser: Any, samples: list[SampleTrace]) -> None:
    page, console = logged_in(browser, server)
    page.goto(server + "/traces")
    page.wait_for_selector("#trace-table tbody tr")
    assert row_ids(page) == newest_first(samples)
    expect(page.locator("#result-count")).to_have_text(f"{len(samples)} traces")
    dots = page.evaluate("""() => document.getElementById('scatter').data.map(
        (d) => ({name: d.name, color: d.marker.color, ids: d.customdata}))""")
    ok, bad = dots
    assert (ok["name"], bad["name"], bad["color"]) == ("ok", "error", "#f85149")
    assert set(bad["ids"]) == {s.trace_id for s in samples if s.error}
    assert set(ok["ids"]) == {s.trace_id for s in samples if not s.error}
    assert "error" in page.locator(f'tr[data-trace-id="{hex_id(RETRIED)}"]').inner_text()

    slow = max(samples[:12], key=lambda s: s.duration_ms)
    page.mouse.click(*dot_center(page, slow.trace_id))
    page.wait_for_url(server + f"/traces/{slow.trace_id}")
    page.wait_for_selector(".wf-row")
    assert csp_problems(page, console) == []
    page.close()


def test_min_ms_narrows_the_search_and_the_url_carries_the_filters(
        server: str, browser: Any, samples: list[SampleTrace]) -> None:
    page, console = logged_in(browser, server)
    page.goto(server + "/traces")
    page.wait_for_selector("#trace-table tbody tr")
    threshold = sorted(s.duration_ms for s in samples[:12] if s.error)[-3] - 0.01
    page.fill("#f-min", f"{threshold:.2f}")
    page.select_option("#f-status", "error")
    page.click("#search")
    expected = newest_first([s for s in samples if s.duration_ms >= threshold and s.error])
    assert len(expected) >= 3
    page.wait_for_function("(n) => document.querySelectorAll('#trace-table tbody tr').length === n",
                           arg=len(expected))
    assert row_ids(page) == expected
    assert re.search(rf"min_ms={threshold:.2f}(&|$)", page.url) and "status=error" in page.url

    # Back and Forward step through the searches.
    rows = "(n) => document.querySelectorAll('#trace-table tbody tr').length === n"
    shared = page.url
    page.go_back()
    page.wait_for_url(server + "/traces")
    page.wait_for_function(rows, arg=len(samples))
    assert page.input_value("#f-min") == ""
    page.go_forward()
    page.wait_for_url(shared)
    page.wait_for_function(rows, arg=len(expected))

    # The URL is the search: opened afresh, it fills the form and finds the same traces.
    page.goto(server + "/")
    page.goto(shared)
    page.wait_for_function(rows, arg=len(expected))
    assert row_ids(page) == expected
    assert page.input_value("#f-min") == f"{threshold:.2f}" and page.input_value("#f-status") == "error"

    # A row opens its trace.
    page.locator("#trace-table tbody tr").first.locator("td.services").click()
    page.wait_for_url(server + f"/traces/{expected[0]}")
    page.wait_for_selector(".wf-row")
    assert page.get_attribute("#back-to-search", "href") == shared.removeprefix(server)  # filters kept
    assert csp_problems(page, console) == []
    page.close()


def test_the_graph_pages_edge_link_lands_on_a_filtered_search(server: str, browser: Any) -> None:
    page, _ = logged_in(browser, server)
    start, end = NOW - 750, NOW - 650
    page.goto(server + f"/traces?source=catalog&target=inventory&min_ms=30&start={start}&end={end}")
    page.wait_for_selector("#trace-table tbody tr")
    assert row_ids(page) == [hex_id(RETRIED)]
    assert (page.input_value("#f-source"), page.input_value("#f-target")) == ("catalog", "inventory")
    assert page.input_value("#f-range") == "custom" and page.locator("#custom-range").is_visible()
    assert f"start={start}" in page.url and f"end={end}" in page.url  # kept exact, not rounded
    page.close()


def test_an_empty_search_names_its_filters_and_a_bad_one_marks_the_field(server: str, browser: Any) -> None:
    page, _ = logged_in(browser, server)
    page.goto(server + "/traces?service=nosuch&min_ms=5&last=900")
    page.wait_for_selector("#empty:not([hidden])")
    text = page.locator("#empty").inner_text()
    assert "No traces match service nosuch · duration ≥ 5 ms in the last 15 min." in text
    assert "Widen the time range or remove a filter" in text and "kept 1 h" in text
    assert page.locator("#trace-table tbody tr").count() == 0

    page.goto(server + "/traces?min_ms=10&max_ms=5")
    page.wait_for_selector("#search-error:not([hidden])")
    assert "min_ms (10.0) must not be above max_ms (5.0)" in page.locator("#search-error").inner_text()
    assert "Fix the highlighted field" in page.locator("#search-error").inner_text()
    assert page.get_attribute("#f-min", "aria-invalid") == "true"

    page.goto(server + "/traces?trace_id=nothex")
    expect(page.locator("#trace-id-error")).to_contain_text("32 hexadecimal digits")
    page.fill("#f-trace", f"  {hex_id(RETRIED).upper()} ")
    page.press("#f-trace", "Enter")
    page.wait_for_url(server + f"/traces/{hex_id(RETRIED)}")
    page.close()


def waterfall(page: Any) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(".wf-row", """rows => rows.map(r => ({
        id: r.dataset.spanId, service: r.dataset.service, kind: r.dataset.kind,
        level: Number(r.getAttribute('aria-level')),
        indent: parseFloat(r.querySelector('.wf-label').style.paddingLeft),
        name: r.querySelector('.wf-name').textContent,
        events: [...r.querySelectorAll('.wf-event')].map(e => e.dataset.event),
        chips: [...r.querySelectorAll('.ev-chip')].map(e => e.textContent),
        net: [...r.querySelectorAll('.wf-net')].map(
            e => [e.dataset.where, parseFloat(e.style.left), parseFloat(e.style.width)]),
        bar: ((b) => [parseFloat(b.style.left), parseFloat(b.style.width)])(r.querySelector('.wf-bar')),
    }))""")


def span_hex(n: int) -> str:
    return (n + 1).to_bytes(8, "big").hex()


def test_the_waterfall_nests_the_hops_marks_the_retry_on_its_span_and_shades_the_network(
        server: str, browser: Any) -> None:
    page, console = logged_in(browser, server)
    page.goto(server + f"/traces/{hex_id(RETRIED)}")
    page.wait_for_selector(".wf-row")
    rows = waterfall(page)
    base = RETRIED * 10
    near = lambda values: pytest.approx(values, abs=0.01)  # noqa: E731  (times rounded to 1 µs)
    # Tree order: each parent before its children, siblings by start.
    assert [(r["id"], r["service"], r["kind"], r["level"]) for r in rows] == [
        (span_hex(base + 1), "frontend", "server", 1),
        (span_hex(base + 2), "frontend", "client", 2),
        (span_hex(base + 3), "catalog", "server", 3),  # the 503
        (span_hex(base + 4), "catalog", "server", 3),  # the retry
        (span_hex(base + 5), "catalog", "client", 4),
        (span_hex(base + 6), "inventory", "server", 5),
        (span_hex(base + 7), "inventory", "internal", 6),
    ]
    indents = [r["indent"] for r in rows]
    assert indents == sorted(indents) and len(set(indents)) == 6 and indents[2] == indents[3]
    # Bars on the trace's time axis (40 ms): the client to catalog from 2 to 34 ms.
    assert rows[1]["bar"] == near([5.0, 80.0])

    # The retry is a marker on the frontend's client span, and only there.
    assert [r["events"] for r in rows] == [[], ["retry"], [], [], [], [], []]
    assert rows[1]["chips"] == ["retry #1"]
    marker = page.locator(f'.wf-row[data-span-id="{span_hex(base + 2)}"] .wf-event')
    assert float(marker.evaluate("e => parseFloat(e.style.left)")) == pytest.approx(12.5 / 40 * 100, abs=0.01)
    assert marker.get_attribute("title").startswith("retry #1 at +10.5 ms into the span")
    assert "reason = 5xx" in marker.get_attribute("title")

    # Network: the client's time outside its servers' spans, on each hop's client span only.
    assert [where for where, _, _ in rows[1]["net"]] == ["before", "between", "after"]
    assert [place for _, *place in rows[1]["net"]] == [
        near([5.0, 2.5]), near([30.0, 10.0]), near([82.5, 2.5])]
    assert [where for where, _, _ in rows[4]["net"]] == ["before", "after"]
    assert [place for _, *place in rows[4]["net"]] == [near([45.0, 2.5]), near([72.5, 2.5])]
    assert [r["net"] for r in rows if r["kind"] != "client"] == [[]] * 5

    # Details: kind, status, times, attributes, events, and the network in ms.
    page.locator(f'.wf-row[data-span-id="{span_hex(base + 2)}"]').click()
    detail = page.locator(f'.wf-detail[data-detail-of="{span_hex(base + 2)}"]')
    text = detail.inner_text()
    assert "network 6.00 ms" in text and "of 32.0 ms calling catalog (2 server spans: one per try)" in text
    assert "1.00 ms before catalog's server span" in text and "4.00 ms between its server spans" in text
    for expected in ("client", "+2.00 ms", "32.0 ms", "destination.service", "url.path", "/items/42",
                     "retry #1", "+10.5 ms", "attempt = 1", "The sidecar scheduled a retry"):
        assert expected in text, expected
    page.locator(f'.wf-row[data-span-id="{span_hex(base + 5)}"]').click()
    hop = page.locator(f'.wf-detail[data-detail-of="{span_hex(base + 5)}"]').inner_text()
    assert "network 2.00 ms" in hop and "calling inventory" in hop
    page.locator(f'.wf-row[data-span-id="{span_hex(base + 3)}"]').click()
    failed = page.locator(f'.wf-detail[data-detail-of="{span_hex(base + 3)}"]').inner_text()
    assert "server" in failed and "error" in failed and "503" in failed and "network" not in failed

    # The header: the trace as a whole, and its page in the long-term backend.
    assert page.locator("#trace-title").inner_text().split() == ["frontend", "GET", "/shop"]
    header = [page.inner_text(f"#t-{name}") for name in ("duration", "spans", "services", "errors", "depth")]
    assert header == ["40.0 ms", "7", "3", "1", "6"]
    assert page.get_attribute("#external-link", "href") == LINK.replace("{trace_id}", hex_id(RETRIED))
    legend = page.locator("#service-legend").inner_text()
    assert "frontend" in legend and "catalog" in legend and "inventory" in legend

    # Collapsing the client to catalog hides its subtree; expanding shows it again.
    page.locator(f'.wf-row[data-span-id="{span_hex(base + 2)}"] .wf-toggle').click()
    assert page.locator(".wf-row:visible").count() == 2
    page.locator(f'.wf-row[data-span-id="{span_hex(base + 2)}"] .wf-toggle').click()
    assert page.locator(".wf-row:visible").count() == 7
    assert csp_problems(page, console) == []
    page.close()


def test_every_service_keeps_its_colour_across_traces(server: str, browser: Any,
                                                      samples: list[SampleTrace]) -> None:
    page, _ = logged_in(browser, server)
    colours = []
    for trace_id in (hex_id(RETRIED), samples[0].trace_id):
        page.goto(server + f"/traces/{trace_id}")
        page.wait_for_selector(".wf-row")
        colours.append(page.eval_on_selector_all(".wf-row", """rows => Object.fromEntries(rows.map(
            r => [r.dataset.service, r.querySelector('.wf-bar').style.background]))"""))
    assert colours[0] == colours[1] and len(set(colours[0].values())) == 3
    page.close()


def test_an_unknown_trace_is_a_clear_not_found_state_and_a_malformed_id_a_400(
        server: str, browser: Any) -> None:
    page, console = logged_in(browser, server)
    page.goto(server + f"/traces/{'ab' * 16}")
    page.wait_for_selector('#trace-state[data-state="not-found"]')
    text = page.locator("#trace-state").inner_text()
    assert "Trace not found" in text and "It may have expired: traces are kept 1 h" in text
    assert page.locator("#trace-view").is_hidden()
    assert page.get_attribute("#trace-state a[href='/traces']", "class") == "button"

    answer = page.goto(server + "/traces/12345")
    assert answer.status == 400
    assert "Not a trace id" in page.locator("#trace-state").inner_text()
    assert csp_problems(page, console) == []
    page.close()


def test_hostile_names_show_as_text_on_both_pages(server: str, browser: Any) -> None:
    page, console = logged_in(browser, server)
    page.goto(server + f"/traces?service={HOSTILE_NAME}")
    page.wait_for_selector("#trace-table tbody tr")
    row = page.locator(f'tr[data-trace-id="{hex_id(HOSTILE)}"]')
    assert row.locator(".root-service").inner_text() == HOSTILE_NAME
    assert page.locator("#trace-table img, #scatter img").count() == 0
    hover = page.evaluate("() => document.getElementById('scatter').data.flatMap((d) => d.text).join()")
    assert "&#60;img src=x onerror=alert(1)&#62;" in hover and "<img" not in hover

    page.goto(server + f"/traces/{hex_id(HOSTILE)}")
    page.wait_for_selector(".wf-row")
    first = page.locator(".wf-row").first
    assert first.locator(".wf-service").inner_text() == HOSTILE_NAME
    assert first.locator(".wf-name").inner_text() == HOSTILE_NAME
    assert first.locator(".ev-chip").inner_text() == HOSTILE_NAME  # an event of its own name
    assert first.locator(".ev-chip").bounding_box()["width"] > 100
    assert page.locator(".wf-row").nth(1).locator(".wf-name").inner_text() == "</script><b>x</b>"
    first.click()
    detail = page.locator(".wf-detail")
    assert detail.locator("th").first.inner_text() == HOSTILE_NAME
    assert "<script>window.__xss=1</script>" in detail.inner_text()
    assert HOSTILE_NAME in detail.locator("table.events").inner_text()
    assert page.locator("#trace-view img, #trace-view b, #trace-view script").count() == 0
    assert page.evaluate("() => window.__xss") is None
    assert not [line for line in console if line.startswith("dialog")]
    assert HOSTILE_NAME in page.locator("#trace-title").inner_text()
    assert csp_problems(page, console) == []
    page.close()


def test_a_trace_of_ten_thousand_spans_draws_its_first_thousand_rows_and_offers_more(
        server: str, browser: Any) -> None:
    page, console = logged_in(browser, server)
    started = time.monotonic()
    page.goto(server + f"/traces/{hex_id(WIDE)}")
    page.wait_for_selector(".wf-row", timeout=30_000)
    assert time.monotonic() - started < 20
    assert page.locator(".wf-row").count() == 1000
    expect(page.locator("#wf-more-text")).to_have_text(
        "Showing the first 1,000 of 10,000 spans (tree order).")
    assert page.inner_text("#t-spans") == "10,000"
    page.click("#wf-more-button")
    expect(page.locator(".wf-row")).to_have_count(2000)
    assert csp_problems(page, console) == []
    page.close()


def test_the_trace_pages_send_an_anonymous_visitor_to_log_in(server: str, browser: Any) -> None:
    page, _ = new_page(browser)
    for path in ("/traces?service=catalog", f"/traces/{hex_id(RETRIED)}"):
        page.goto(server + path)
        assert page.url.startswith(server + "/accounts/login/?next=")
        assert page.locator("input[name=username]").is_visible()
    page.close()


def test_a_store_that_is_down_is_an_actionable_message_with_retry(
        browser: Any, tmp_path: Path) -> None:
    redis = StoppableRedis()
    try:
        with meshui_server(redis.url, tmp_path, users={"victor": "viewer"}, MESHUI_USER_PASSWORD=PASSWORD,
                           MESHUI_PUBLIC_READ="false") as url:
            page, _ = logged_in(browser, url)
            redis.stop()
            page.goto(url + "/traces")
            page.wait_for_selector("#search-error:not([hidden])")
            assert "The trace store (Redis) is not answering" in page.inner_text("#search-error")
            page.goto(url + f"/traces/{hex_id(RETRIED)}")
            page.wait_for_selector('#trace-state[data-state="error"]')
            assert "The trace store (Redis) is not answering" in page.inner_text("#trace-state")
            redis.start()
            page.click("#retry")
            page.wait_for_selector('#trace-state[data-state="not-found"]')
            page.goto(url + "/traces")
            page.wait_for_selector("#empty:not([hidden])")
            assert page.inner_text("#empty-title") == "No traces yet"
            page.close()
    finally:
        redis.close()
