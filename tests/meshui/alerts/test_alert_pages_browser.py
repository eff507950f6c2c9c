"""The alert pages in real Chromium against a real uvicorn: from an edge on the graph to a
saved rule (its backtest drawn with both thresholds and the periods it would have been
pending and firing), the rule going pending then firing on the live graph without a reload
(the evaluator run as the worker runs it), the list filtered from the badge, hostile names as
text, a silence made from an alert's "Silence this" and expired, contact points made in
their editor and tested against real webhook receivers on loopback, and a viewer who may
only read."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from meshui.dashboard.health import AMBER, RED
from tests.meshui.alerts.receivers import http_receiver
from tests.meshui.alerts.shop import evaluate, write_shop
from tests.meshui.browser import HAVE_CHROMIUM, chromium, csp_problems, meshui_server, new_page
from tests.meshui.conftest import StoppableRedis

pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Debian's chromium")

PASSWORD = "browser-user-password"
USERS = {"olivia": "operator", "victor": "viewer"}
HOSTILE = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture(scope="module")
def valkey() -> Iterator[StoppableRedis]:
    server = StoppableRedis()
    yield server
    server.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("meshui")


@pytest.fixture(scope="module")
def server(valkey: StoppableRedis, workdir: Path) -> Iterator[str]:
    # A past incident 15 to 10 minutes ago (the backtest's pending and firing), calm since.
    now = int(time.time())
    write_shop(valkey.url, range(now - 1200, now + 1), breach=range(now - 900, now - 600))
    with meshui_server(valkey.url, workdir, users=USERS, MESHUI_USER_PASSWORD=PASSWORD,
                       MESHUI_PUBLIC_READ="false") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def logged_in(browser: Any, server: str, username: str) -> tuple[Any, list[str]]:
    page, console = new_page(browser)
    page.goto(server + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")
    return page, console


def api(page: Any, server: str, method: str, path: str, body: dict[str, Any]) -> Any:
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.fetch(server + path, method=method, data=json.dumps(body),
                                  headers={"X-CSRFToken": token, "Content-Type": "application/json"})
    return response.status, response.json()


SHAPES = "() => (document.getElementById('backtest-chart').layout || {}).shapes || []"
BADGE = """() => {
    const gd = document.getElementById('graph');
    const found = (gd.layout.annotations || []).map((a, i) => ({...a, index: i}))
        .filter((a) => (a.name || '').startsWith('alert-badge-'));
    const edges = gd.data.find((t) => t.name === 'edges');
    const at = edges.customdata.indexOf('checkout->payments');
    const arrow = gd.layout.annotations.find((a) => a.name === 'edge-' + at);
    return {badges: found.map((a) => ({index: a.index, color: a.bgcolor, text: a.text})),
            arrow: arrow.arrowcolor, diamond: edges.marker.color[at]};
}"""


def test_alert_on_an_edge_backtests_saves_then_fires_on_the_live_graph(
        server: str, browser: Any, valkey: StoppableRedis, workdir: Path) -> None:
    page, console = logged_in(browser, server, "olivia")
    page.locator('#edges tr[data-edge="checkout->payments"]').click()
    expect(page.locator("#edge-detail")).to_be_visible()
    page.click("#edge-detail-alert")
    page.wait_for_url("**/alerts/rules/new?source=checkout&target=payments")

    # Pre-filled: the edge, an error rate above 5 % (shown as a percent), recover 2 %, 60 s.
    expect(page.locator("#target-kind")).to_have_value("edge")
    expect(page.locator("#target-source")).to_have_value("checkout")
    expect(page.locator("#target-target")).to_have_value("payments")
    expect(page.locator("#name")).to_have_value("checkout -> payments error rate")
    for field, value in (("#metric", "error_rate"), ("#fire", "5"), ("#recover", "2"),
                         ("#for_s", "60"), ("#window_s", "60")):
        expect(page.locator(field)).to_have_value(value)

    # The backtest: the metric, both thresholds, and the incident shaded pending then firing.
    page.wait_for_function(f"""() => ({SHAPES})().some((s) => s.name === 'period:Firing')""")
    shapes = page.evaluate(SHAPES)
    lines = {s["name"]: s["y0"] for s in shapes if s["type"] == "line"}
    assert lines == {"fire": 5, "recover": 2}
    periods = [(s["name"], s["x0"], s["x1"]) for s in shapes if s["type"] == "rect"]
    assert [name for name, _, _ in periods if name != "period:NoData"] == [
        "period:Pending", "period:Firing"], periods
    values = page.evaluate("() => document.getElementById('backtest-chart').data[0].y")
    assert max(v for v in values if v is not None) == 30  # percent, not the ratio 0.3
    expect(page.locator("#backtest-summary")).to_contain_text("would have fired 1 time")

    # A recover above fire is refused: the API's message goes next to the field.
    page.fill("#recover", "8")
    expect(page.locator('[data-param="rule.recover"] .field-error')).to_contain_text(
        "must be at most fire")
    page.fill("#recover", "2")
    expect(page.locator('[data-param="rule.recover"] .field-error')).to_be_hidden()

    page.fill("#name", "payments errors")
    page.click("#save-rule")
    page.wait_for_url(re.compile(r".*/alerts/rules/\d+$"))
    rule_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#rule-name")).to_have_text("payments errors")
    expect(page.locator("#rule-condition")).to_have_text(
        "error rate over 60 s above 5 %, for 1 min; recovers below 2 %")
    expect(page.locator("#rule-states .pill")).to_have_text("Normal")
    assert csp_problems(page, console) == []

    # The graph, live: the edge is calm (green) and wears no badge.
    page.goto(server + "/")
    page.wait_for_function("() => document.body.dataset.alertBadges === '0'")
    page.evaluate("window.__sameDocument = true")
    # Payments starts failing: the collector's writes of the next two minutes (stamped ahead,
    # so that the evaluator's cycles at t + 60 and t + 120 read them).
    t = int(time.time()) + 1
    write_shop(valkey.url, range(t, t + 130), breach=range(t, t + 130))
    evaluate(valkey.url, workdir, t + 60)
    page.wait_for_function(f"() => ({BADGE})().badges.length === 1", timeout=15000)
    drawn = page.evaluate(BADGE)
    assert drawn["badges"][0]["color"] == AMBER  # pending
    assert drawn["arrow"] == AMBER and drawn["diamond"] == AMBER
    evaluate(valkey.url, workdir, t + 120)
    page.wait_for_function(f"() => ({BADGE})().badges[0].color === '{RED}'", timeout=15000)
    drawn = page.evaluate(BADGE)
    assert drawn["arrow"] == RED and drawn["diamond"] == RED
    assert drawn["badges"][0]["text"] == "<b>1</b>"
    expect(page.locator("#sum-alerts .value")).to_have_text("1 firing")
    assert page.evaluate("window.__sameDocument") is True, "the graph was reloaded"

    # The badge opens the list, filtered to its rule; the filters are in the URL.
    page.locator(f'#graph g.annotation[data-index="{drawn["badges"][0]["index"]}"]').click()
    page.wait_for_url(f"**/alerts?rule={rule_id}")
    row = page.locator(f'#alerts tr.alert-row[data-rule="{rule_id}"]')
    expect(row.locator(".pill")).to_have_text("Firing")
    expect(row.locator(".target")).to_have_text("checkout → payments")
    expect(row.locator(".value")).to_contain_text("30 %")
    expect(page.locator("#rule-chip")).to_contain_text("payments errors")
    page.select_option("#filter-state", "Pending")
    expect(page.locator("#alerts tbody")).to_contain_text("No alert matches these filters.")
    assert "state=Pending" in page.url and f"rule={rule_id}" in page.url

    # Its page: the history holds both changes.
    page.goto(server + f"/alerts/rules/{rule_id}")
    expect(page.locator("#rule-history tbody tr")).to_have_count(2)
    expect(page.locator("#rule-history tbody tr").first.locator(".change")).to_contain_text(
        "Pending → Firing")
    assert csp_problems(page, console) == []


def test_names_are_text_on_the_alert_pages(server: str, browser: Any) -> None:
    page, console = logged_in(browser, server, "olivia")
    status, rule = api(page, server, "POST", "/api/v1/alerts/rules", {
        "name": HOSTILE, "target": {"service": HOSTILE}, "metric": "rps", "window_s": 60,
        "op": "<", "fire": 1, "labels": {"team": HOSTILE}})
    assert status == 201, rule
    page.goto(server + "/alerts")
    row = page.locator(f'#alerts tr.alert-row[data-rule="{rule["id"]}"]')
    expect(row.locator(".rule-name a")).to_have_text(HOSTILE)
    expect(row.locator(".target")).to_have_text(HOSTILE)
    page.goto(server + f"/alerts/rules/{rule['id']}/edit")
    expect(page.locator("#target-service")).to_have_value(HOSTILE)
    page.wait_for_function("() => document.getElementById('backtest-chart').dataset.drawn")
    assert page.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert csp_problems(page, console) == []
    api(page, server, "DELETE", f"/api/v1/alerts/rules/{rule['id']}", {})


def test_a_viewer_reads_alerts_but_is_offered_no_edit(server: str, browser: Any) -> None:
    page, console = logged_in(browser, server, "victor")
    page.locator('#edges tr[data-edge="checkout->payments"]').click()
    expect(page.locator("#edge-detail")).to_be_visible()
    expect(page.locator("#edge-detail-alert")).to_have_count(0)
    expect(page.locator("#nodes tr[data-node]").first).to_be_visible()
    expect(page.locator("#nodes .alert-link")).to_have_count(0)
    page.goto(server + "/alerts")
    expect(page.locator("#read-only-note")).to_contain_text("victor is a viewer")
    expect(page.locator("#new-rule")).to_be_disabled()
    expect(page.locator(".edit-rule")).to_have_count(0)
    page.goto(server + "/alerts/rules/new?service=payments")
    expect(page.locator("#save-rule")).to_be_disabled()
    # It may still see what a rule would do.
    page.wait_for_function("() => document.getElementById('backtest-chart').dataset.drawn")
    assert csp_problems(page, console) == []


def test_silence_this_opens_a_prefilled_silence_that_mutes_the_alert_until_expired(
        server: str, browser: Any, valkey: StoppableRedis, workdir: Path) -> None:
    page, console = logged_in(browser, server, "olivia")
    status, rule = api(page, server, "POST", "/api/v1/alerts/rules", {
        "name": "ledger errors", "target": {"source": "payments", "target": "ledger"},
        "metric": "error_rate", "window_s": 60, "op": ">", "fire": 0.05,
        "labels": {"team": "ledger"}})
    assert status == 201, rule
    evaluate(valkey.url, workdir, time.time())  # it has a state: a silence can match it
    page.goto(server + f"/alerts?rule={rule['id']}")
    row = page.locator(f'#alerts tr.alert-row[data-rule="{rule["id"]}"]')
    expect(row.locator(".silenced-mark")).to_have_count(0)
    row.locator(".silence-this").click()
    page.wait_for_url("**/alerts/silences?**")
    expect(page.locator("#silence-form")).to_be_visible()
    matchers = page.evaluate("""() => [...document.querySelectorAll('.matcher-row')].map((r) =>
        [r.querySelector('.matcher-name').value, r.querySelector('.matcher-op').value,
         r.querySelector('.matcher-value').value])""")
    assert matchers == [["alertname", "=", "ledger errors"], ["source", "=", "payments"],
                        ["target", "=", "ledger"]]

    # A bad regular expression is refused next to its matcher.
    page.click("#matcher-add")
    last = page.locator(".matcher-row").last
    last.locator(".matcher-name").fill("team")
    last.locator(".matcher-op").select_option("=~")
    last.locator(".matcher-value").fill("led(ger")
    page.click("#silence-create")
    expect(last.locator(".field-error")).to_be_visible()
    last.locator(".matcher-value").fill("led.*")
    page.fill("#silence-comment", "ledger migration")
    page.click("#silence-create")
    expect(page.locator("#silence-form")).to_be_hidden()
    created = page.evaluate("() => document.body.dataset.created")
    silence = page.locator(f'#silences tr.silence-row[data-silence="{created}"]')
    expect(silence.locator(".pill")).to_have_text("active")
    expect(silence.locator(".silenced-now")).to_contain_text("1 alert: ledger errors on payments → ledger")
    expect(silence.locator(".comment")).to_have_text("ledger migration")
    assert "matcher=" not in page.url

    page.goto(server + f"/alerts?rule={rule['id']}")
    expect(row.locator(".silenced-mark")).to_have_text("silenced")

    page.goto(server + "/alerts/silences")
    button = silence.locator(".expire")
    button.click()
    expect(button).to_have_text("Expire now?")
    button.click()
    expect(silence.locator(".pill")).to_have_text("expired")
    page.goto(server + f"/alerts?rule={rule['id']}")
    expect(row.locator(".pill")).to_be_visible()
    expect(row.locator(".silenced-mark")).to_have_count(0)
    assert csp_problems(page, console) == []
    api(page, server, "DELETE", f"/api/v1/alerts/rules/{rule['id']}", {})


def test_a_contact_point_made_in_its_editor_is_tested_and_a_refusing_one_shows_failing(
        server: str, browser: Any) -> None:
    page, console = logged_in(browser, server, "olivia")
    with contextmanager(http_receiver)() as good, contextmanager(http_receiver)() as bad:
        bad.answer((400, "bad request: unknown receiver"))
        for name, url in (("on-call", good.url), ("old pager", bad.url)):
            page.goto(server + "/alerts/contact-points/new")
            page.fill("#point-name", name)
            page.select_option("#point-kind", "webhook")
            page.fill("#point-url", url)
            page.click("#mute-add")
            page.locator(".mute-row .mute-to").fill("25:00")
            page.click("#save-point")
            # A bad mute time is refused next to its row; fixed, the point is saved.
            expect(page.locator(".mute-row .field-error")).to_be_visible()
            page.locator(".mute-row .mute-to").fill("24:00")
            page.click("#save-point")
            page.wait_for_url("**/alerts/contact-points")
        rows = page.locator("#contact-points tr.point-row")
        expect(rows).to_have_count(2)
        ids = {name: rows.filter(has_text=name).get_attribute("data-point")
               for name in ("on-call", "old pager")}
        good_row = page.locator(f'tr.point-row[data-point="{ids["on-call"]}"]')
        expect(good_row.locator(".pill")).to_have_text("untested")
        expect(good_row.locator(".grouping")).to_contain_text("muted sat sun 00:00–24:00 UTC")
        good_row.locator(".send-test").click()
        result = page.locator(f'tr.test-result[data-point="{ids["on-call"]}"]')
        expect(result).to_contain_text("Test notification sent (200)")
        expect(good_row.locator(".pill")).to_have_text("ok")
        assert good.bodies()[0]["alerts"][0]["labels"]["alertname"] == "TestAlert"
        bad_row = page.locator(f'tr.point-row[data-point="{ids["old pager"]}"]')
        bad_row.locator(".send-test").click()
        expect(page.locator(f'tr.test-result[data-point="{ids["old pager"]}"]')).to_contain_text(
            "Test notification failed (400)")
        expect(bad_row.locator(".pill")).to_have_text("failing")
        expect(bad_row.locator(".failing-reason")).to_contain_text("400")
        bad_row.locator(".attempts-toggle").click()
        expect(page.locator(f'tr.attempts-row[data-point="{ids["old pager"]}"]')).to_contain_text("refused")

    # A rule picks it in its editor.
    page.goto(server + "/alerts/rules/new?service=ledger")
    page.locator(f'#contact-points input[value="{ids["on-call"]}"]').check()
    page.fill("#name", "ledger service errors")
    page.click("#save-rule")
    page.wait_for_url(re.compile(r".*/alerts/rules/\d+$"))
    expect(page.locator("#rule-contact-points")).to_have_text("on-call")

    # Deleting asks first.
    page.goto(server + "/alerts/contact-points")
    remove = bad_row.locator(".delete-point")
    remove.click()
    expect(remove).to_have_text("Delete it?")
    remove.click()
    expect(rows).to_have_count(1)
    assert csp_problems(page, console) == []


def test_a_viewer_sees_silences_and_contact_points_read_only(server: str, browser: Any) -> None:
    page, console = logged_in(browser, server, "victor")
    page.goto(server + "/alerts/silences?matcher=team%3Dpayments")
    expect(page.locator("#read-only-note")).to_contain_text("Silencing alerts needs the operator role")
    expect(page.locator("#new-silence")).to_be_disabled()
    expect(page.locator("#silence-form")).to_be_hidden()
    page.goto(server + "/alerts/contact-points")
    expect(page.locator("#read-only-note")).to_contain_text("Editing contact points needs the operator role")
    expect(page.locator(".send-test")).to_have_count(0)
    assert csp_problems(page, console) == []
