"""Screenshots of mTLS and authorization in the UI: ``python -m tests.meshui.authz_screenshots OUT_DIR``.

Starts its own Valkey and meshui, writes a minute of the sample shop's traffic with its
security events (tests/meshui/sample_security.py: mTLS everywhere but one mixed edge,
denials on checkout -> payments), and shoots the graph (with a padlock's hover), then
catalog's authorization editor through "Allow only what you see" (the proposals), in audit
with a caller the rules would deny, the Enforce confirmation, enforcing, and as a viewer
(docs/ui.md).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from tests.meshui.browser import CHROMIUM, CHROMIUM_ARGS, meshui_server
from tests.meshui.conftest import StoppableRedis
from tests.meshui.sample_graph import write_sample_graph
from tests.meshui.sample_security import MIXED, NEWCOMER, security_events, write_caller

PASSWORD = "screenshot-password"


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


def shoot_card(page: Any, path: str) -> None:
    """The authorization card alone, whole (the viewport made tall enough for it above the
    sticky Apply bar); the viewport is put back afterwards."""
    card = page.locator("#authz-card")
    height = card.bounding_box()["height"]
    page.set_viewport_size({"width": 1440, "height": int(height) + 140})
    page.evaluate("() => window.scrollTo(0, document.getElementById('authz-card')"
                  ".getBoundingClientRect().top + window.scrollY - 16)")
    box = card.bounding_box()
    page.screenshot(path=path, clip={"x": 0, "y": box["y"] - 16, "width": 1440,
                                     "height": box["height"] + 32})
    page.set_viewport_size({"width": 1440, "height": 900})


def shoot(url: str, redis_url: str, out: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = login(browser, url, "olivia")
        # A DENY rule on payments, so the graph's red label has a cause.
        write(page, url, "PATCH", "/api/v1/policy/services/payments", {
            "patch": {"authorization": {"rules": [
                {"name": "no-refunds-from-checkout", "action": "DENY", "sources": ["checkout"],
                 "path_prefix": "/refunds"}]}},
            "parent": 0, "message": "refunds go through the back office", "source": "ui"})

        # The newcomer's edge into catalog, counted by catalog's AUDIT rules below.
        page.goto(url + "/services/catalog")
        page.select_option("#authz-window", "900")
        page.click("#authz-propose")
        page.wait_for_selector(".authz-proposal")
        shoot_card(page, str(out / "authz-proposals.png"))
        page.click("#authz-save")
        page.wait_for_selector("#apply-dialog:not([hidden])")
        page.wait_for_selector("#apply-diff .diff-add")
        page.screenshot(path=str(out / "authz-apply.png"))
        page.click("#apply-confirm")
        page.wait_for_selector("#authz-mode[data-mode=audit]")

        for _ in range(3):
            write_caller(redis_url, NEWCOMER[0], NEWCOMER[1], 23, mtls=23, audit_denied=23)
        page.wait_for_selector('#authz-callers tr[data-caller="reviews"] .would-deny.amber')
        shoot_card(page, str(out / "authz-audit.png"))

        page.goto(url + "/")
        page.wait_for_selector("#status.live", timeout=15000)
        page.wait_for_timeout(800)
        index = page.evaluate("(id) => document.getElementById('graph').layout.annotations"
                              ".findIndex((a) => a.name === 'mtls-' + document.getElementById('graph')"
                              ".data[0].customdata.indexOf(id))", "->".join(MIXED))
        page.screenshot(path=str(out / "graph-security.png"))
        page.locator(f'#graph .annotation[data-index="{index}"]').hover()
        page.wait_for_selector("#graph .hoverlayer .hovertext")
        page.screenshot(path=str(out / "graph-padlock-hover.png"))

        page.goto(url + "/services/catalog")
        page.wait_for_selector('#authz-callers tr[data-caller="reviews"] .would-deny.amber')
        page.click("#authz-enforce")
        page.wait_for_selector("#enforce-diff .diff-add")
        page.screenshot(path=str(out / "authz-enforce.png"))
        page.click("#enforce-confirm")
        page.wait_for_selector("#authz-mode[data-mode=enforcing]")
        for _ in range(2):
            write_caller(redis_url, NEWCOMER[0], NEWCOMER[1], 6, mtls=6, denied=6)
        page.wait_for_selector('#authz-callers tr[data-caller="reviews"] .denied.red')
        shoot_card(page, str(out / "authz-enforcing.png"))

        viewer = login(browser, url, "victor")
        viewer.goto(url + "/services/catalog")
        viewer.wait_for_selector(".authz-rule")
        shoot_card(viewer, str(out / "authz-viewer.png"))
        browser.close()


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    valkey = StoppableRedis()
    try:
        # No newcomer yet: "Allow only what you see" proposes catalog's usual callers.
        write_sample_graph(valkey.url, seconds=60, events=security_events)
        with tempfile.TemporaryDirectory() as work, meshui_server(
                valkey.url, Path(work), users={"olivia": "operator", "victor": "viewer"},
                MESHUI_USER_PASSWORD=PASSWORD, MESHUI_PUBLIC_READ="false") as url:
            shoot(url, valkey.url, out)
    finally:
        valkey.close()


if __name__ == "__main__":
    main(sys.argv[1])
