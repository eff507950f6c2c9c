"""Screenshots of the alert pages for review: ``python -m tests.meshui.alert_screenshots OUT_DIR``.

Starts its own Valkey and meshui, writes half an hour of a small shop's traffic with a past
incident and a current one (tests/meshui/alerts/shop.py), makes a few rules through the
API, replays the evaluator over the half hour (so states and history are real), and shoots
the alerts list, a rule's page, the editor with its backtest (from an edge's "Alert on
this"), the graph with its badges, the contact points (tested against webhook receivers on
loopback) and their editor, the silences (with one being made from an alert's "Silence
this"), and the list as a viewer and with no rule (docs/ui.md, "Alerts")."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from tests.meshui.alerts.receivers import http_receiver
from tests.meshui.alerts.shop import evaluate, write_shop
from tests.meshui.browser import CHROMIUM, CHROMIUM_ARGS, meshui_server
from tests.meshui.conftest import StoppableRedis

PASSWORD = "screenshot-password"
RULES: list[dict[str, Any]] = [
    {"name": "payments errors", "target": {"source": "checkout", "target": "payments"},
     "metric": "error_rate", "window_s": 60, "op": ">", "fire": 0.05, "recover": 0.02,
     "for_s": 60, "severity": "critical", "labels": {"team": "payments"}},
    {"name": "payments v2 errors", "target": {"service": "payments", "version": "v2"},
     "metric": "error_rate", "window_s": 30, "op": ">", "fire": 0.1, "recover": 0.05,
     "severity": "warning", "labels": {"team": "payments"}},
    {"name": "checkout slow", "target": {"service": "checkout"}, "metric": "p95_ms",
     "window_s": 60, "op": ">", "fire": 40.0, "recover": 30.0, "for_s": 3600,
     "severity": "warning", "labels": {"team": "shop"}},
    {"name": "ledger traffic stopped", "target": {"source": "*", "target": "ledger"},
     "metric": "rps", "window_s": 60, "op": "<", "fire": 1.0, "recover": 2.0,
     "severity": "info"},
    {"name": "old payments instance", "target": {"instance": "payments-9"},
     "metric": "error_rate", "window_s": 60, "op": ">", "fire": 0.05, "severity": "info"},
]


def login(browser: Any, url: str, username: str) -> Any:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(url + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    return page


def write(page: Any, url: str, method: str, path: str, body: dict[str, Any]) -> Any:
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.fetch(url + path, method=method, data=json.dumps(body),
                                  headers={"X-CSRFToken": token, "Content-Type": "application/json"})
    assert response.status < 300, response.text()
    return response.json()


def shoot(url: str, out: Path, valkey_url: str, work: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = login(browser, url, "olivia")
        page.goto(url + "/alerts")
        page.wait_for_selector("#no-rules:not([hidden])")
        page.screenshot(path=str(out / "alerts-empty.png"))

        ids = [write(page, url, "POST", "/api/v1/alerts/rules", rule)["id"] for rule in RULES]
        now = int(time.time())
        evaluate(valkey_url, work, *range(now - now % 10 - 1790, now + 1, 10))

        page.goto(url + "/alerts")
        page.wait_for_selector("#alerts tbody tr.alert-row")
        page.screenshot(path=str(out / "alerts.png"))

        page.goto(url + f"/alerts/rules/{ids[0]}")
        page.wait_for_selector("#rule-history tbody tr td.change")
        page.wait_for_function("() => document.getElementById('backtest-chart').dataset.drawn")
        page.set_viewport_size({"width": 1440, "height": 1250})
        page.screenshot(path=str(out / "alert-rule.png"))
        page.set_viewport_size({"width": 1440, "height": 900})

        page.goto(url + "/#edge=checkout,payments")
        page.click("#edge-detail-alert")
        page.wait_for_url("**/alerts/rules/new?**")
        page.wait_for_function("() => document.getElementById('backtest-chart').dataset.drawn")
        page.set_viewport_size({"width": 1440, "height": 1100})
        page.screenshot(path=str(out / "alert-editor.png"))
        page.fill("#recover", "8")
        page.wait_for_selector('[data-param="rule.recover"].has-error')
        page.screenshot(path=str(out / "alert-editor-error.png"))
        page.set_viewport_size({"width": 1440, "height": 900})

        page.goto(url + "/")
        page.wait_for_function("() => Number(document.body.dataset.alertBadges) > 0")
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / "graph-alerts.png"))

        # Contact points: one that takes messages, one that refuses them, one never tried.
        with contextmanager(http_receiver)() as good, contextmanager(http_receiver)() as bad:
            bad.answer((400, "bad request: unknown receiver"))
            made = (
                {"name": "on-call webhook", "kind": "webhook", "url": good.url,
                 "group_by": ["alertname", "team"]},
                {"name": "old pager", "kind": "webhook", "url": bad.url},
                {"name": "payments team", "kind": "email", "address": "payments@example.com",
                 "send_resolved": False, "mute_times": [{"days": ["sat", "sun"], "from": "00:00",
                                                         "to": "24:00", "timezone": "Europe/Paris"}]},
                {"name": "#incidents", "kind": "slack",
                 "url": "https://hooks.slack.com/services/T000/B000/XXXXXXXX"})
            points = [write(page, url, "POST", "/api/v1/alerts/contact-points", point)["id"]
                      for point in made]
            write(page, url, "PUT", f"/api/v1/alerts/rules/{ids[0]}",
                  {**RULES[0], "contact_points": points[:3]})
            write(page, url, "POST", f"/api/v1/alerts/contact-points/{points[1]}/test", {})
            page.goto(url + "/alerts/contact-points")
            page.wait_for_selector("#contact-points tr.point-row")
            page.click(f'tr.point-row[data-point="{points[0]}"] .send-test')
            page.wait_for_selector("tr.test-result")
            page.click(f'tr.point-row[data-point="{points[0]}"] .attempts-toggle')
            page.wait_for_selector("tr.attempts-row .attempt")
            page.screenshot(path=str(out / "contact-points.png"))
        page.goto(url + f"/alerts/contact-points/{points[2]}/edit")
        page.wait_for_selector(".mute-row")
        page.screenshot(path=str(out / "contact-point-editor.png"))

        # Silences: one active, one expired, and a new one from an alert's "Silence this".
        write(page, url, "POST", "/api/v1/alerts/silences", {
            "matchers": [{"name": "team", "op": "=", "value": "shop"}], "duration_s": 7200,
            "comment": "checkout p95 known: new search index"})
        old = write(page, url, "POST", "/api/v1/alerts/silences", {
            "matchers": [{"name": "alertname", "op": "=~", "value": "ledger.*"}], "duration_s": 600,
            "comment": "ledger migration"})
        write(page, url, "DELETE", f"/api/v1/alerts/silences/{old['id']}", {})
        page.goto(url + "/alerts")
        page.click(f'#alerts tr.alert-row[data-rule="{ids[0]}"] .silence-this')
        page.wait_for_selector("#silence-form:not([hidden])")
        page.fill("#silence-comment", "payments v3 rollout")
        page.wait_for_selector("#silences tr.silence-row")
        page.set_viewport_size({"width": 1440, "height": 1000})
        page.screenshot(path=str(out / "silences.png"))
        page.set_viewport_size({"width": 1440, "height": 900})

        viewer = login(browser, url, "victor")
        viewer.goto(url + "/alerts?severity=critical")
        viewer.wait_for_selector("#alerts tbody tr.alert-row")
        viewer.screenshot(path=str(out / "alerts-viewer.png"))
        browser.close()


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    valkey = StoppableRedis()
    now = int(time.time())
    try:
        write_shop(valkey.url, range(now - 1800, now + 1),
                   breach=[*range(now - 1500, now - 1200), *range(now - 180, now + 1)])
        with tempfile.TemporaryDirectory() as tmp, meshui_server(
                valkey.url, Path(tmp), users={"olivia": "operator", "victor": "viewer"},
                MESHUI_USER_PASSWORD=PASSWORD, MESHUI_PUBLIC_READ="false") as url:
            shoot(url, out, valkey.url, Path(tmp))
    finally:
        valkey.close()


if __name__ == "__main__":
    main(sys.argv[1])
