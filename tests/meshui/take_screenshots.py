"""Screenshots for review: ``python -m tests.meshui.take_screenshots URL OUT`` (the graph
page of a running meshui), or ``--policy OUT_DIR`` (every policy page, on a meshui of its own)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from tests.meshui.browser import CHROMIUM, CHROMIUM_ARGS


def main(url: str, out: str, hover: str | None = None) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 860})
        page.goto(url)
        page.wait_for_selector("#status.live", timeout=15000)
        page.wait_for_timeout(800)
        if hover:
            box = page.locator(hover).first.bounding_box()
            if box:
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.wait_for_timeout(400)
        page.screenshot(path=out)
        browser.close()




# --- the policy pages: ``python -m tests.meshui.take_screenshots --policy OUT_DIR`` ---------
# Starts its own Valkey, meshui and fake sidecars (tests/meshui/fake_sidecars.py), writes a
# sample graph and a few revisions, then shoots every policy page as an operator and the
# service page as a viewer. Until the collector splits edges by version, the shots add a
# ``by_version`` to the graph API's edges on the way (the share of each version's instances).

POLICY_PASSWORD = "screenshot-password"


def _with_by_version(route: Any) -> None:
    response = route.fetch()
    graph = response.json()
    versions = {n["id"]: n["versions"] or ["v1"] for n in graph["nodes"]}
    for edge in graph["edges"]:
        names = versions.get(edge["target"], ["v1"])
        weights = [0.7, 0.3] if len(names) == 2 else [1 / len(names)] * len(names)
        edge["by_version"] = {v: {"requests": round(edge["requests"] * w), "errors": 0,
                                  "rps": edge["rps"] * w, "share": w, "p50_ms": edge["p50_ms"],
                                  "p95_ms": edge["p95_ms"], "p99_ms": edge["p99_ms"]}
                              for v, w in zip(names, weights, strict=True)}
    route.fulfill(response=response, json=graph)


def _login(browser: Any, url: str, username: str) -> Any:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(url + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", POLICY_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    return page


def _write(page: Any, method: str, path: str, body: dict[str, Any]) -> None:
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    page.request.fetch(page.url.rstrip("/") + path if path.startswith("/") else path,
                       method=method, data=json.dumps(body),
                       headers={"X-CSRFToken": token, "Content-Type": "application/json"})


def shoot_policy_pages(url: str, out: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = _login(browser, url, "olivia")
        page.wait_for_function("""async () => (await (await fetch('/api/v1/proxies')).json())
            .proxies.filter((p) => p.connected).length >= 3""", timeout=15000)
        base = url
        for number, (patch, message) in enumerate([
            ({"split": {"v1": 90, "v2": 10}}, "canary v2 at 10%"),
            ({"split": {"v1": 70, "v2": 30}, "circuit_breaker": {"max_requests": 200}},
             "more v2; cap in-flight requests"),
            ({"routes": [{"name": "beta-testers", "match": {"headers": {"x-beta": "1"}},
                          "split": {"v2": 100}},
                         {"name": "fault-injection",
                          "fault": {"delay": {"fixed_ms": 150, "percent": 5}}}]},
             "beta header to v2; 5% delayed"),
        ], start=0):
            _write(page, "PATCH", base + "/api/v1/policy/services/catalog",
                   {"patch": patch, "parent": number, "message": message, "source": "ui"})
        _write(page, "PATCH", base + "/api/v1/policy/services/reviews",
               {"patch": {"rate_limit": {"total": {"requests_per_second": 50}}}, "parent": 3,
                "message": "protect reviews", "source": "ui"})

        page.goto(url + "/")
        page.wait_for_selector("#status.live", timeout=15000)
        page.wait_for_function("() => document.getElementById('policy-status').textContent")
        page.wait_for_timeout(600)
        page.screenshot(path=str(out / "graph.png"))

        page.route("**/api/v1/graph?window=*", _with_by_version)
        page.goto(url + "/services/catalog")
        page.wait_for_function("() => document.querySelector('.observed').textContent "
                               "!== 'no traffic'", timeout=10000)
        page.wait_for_selector("#ejected-now .ejected-row", timeout=10000)
        # Tall enough for the whole page, so the sticky Apply bar sits at its end.
        page.set_viewport_size({"width": 1440, "height": 1850})
        page.screenshot(path=str(out / "service.png"))
        page.set_viewport_size({"width": 1440, "height": 900})
        page.locator('.split-number[data-version="v1"]').fill("50")
        page.locator('.split-number[data-version="v1"]').press("Tab")
        page.fill("#f-outlier-detection-consecutive-5xx", "3")
        page.click("#apply")
        page.wait_for_selector("#apply-dialog:not([hidden])")
        page.fill("#apply-message", "even split, eject sooner")
        page.screenshot(path=str(out / "service-apply.png"))
        page.click("#apply-confirm")
        page.wait_for_function("() => document.querySelector('#apply-progress .sync-problem')",
                               timeout=15000)
        page.screenshot(path=str(out / "service-applied.png"))

        page.goto(url + "/policy/history")
        page.wait_for_selector("#diff span", timeout=10000)
        page.screenshot(path=str(out / "history.png"), full_page=True)

        page.goto(url + "/policy/edit")
        page.wait_for_selector(".ok-line", timeout=10000)
        text = page.input_value("#yaml").replace("v1: 50", "v1: 40", 1)
        page.fill("#yaml", text)
        page.wait_for_selector(".problem.error", timeout=10000)
        page.screenshot(path=str(out / "yaml-editor.png"))

        viewer = _login(browser, url, "victor")
        viewer.route("**/api/v1/graph?window=*", _with_by_version)
        viewer.goto(url + "/services/catalog")
        viewer.wait_for_timeout(800)
        viewer.screenshot(path=str(out / "service-viewer.png"))
        _write(viewer, "PATCH", base + "/api/v1/policy/services/catalog",
               {"patch": {"split": {"v1": 100, "v2": 0}}, "parent": 5})  # refused: a viewer

        page.goto(url + "/policy/audit")
        page.screenshot(path=str(out / "audit.png"), full_page=True)
        browser.close()


def policy_main(out_dir: str) -> None:
    import tempfile

    from tests.meshui.browser import join_tokens, meshui_server
    from tests.meshui.conftest import StoppableRedis
    from tests.meshui.fake_sidecars import FakeSidecar, fake_sidecars
    from tests.meshui.sample_graph import write_sample_graph

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    valkey = StoppableRedis()
    sidecars = [FakeSidecar("frontend-1", "frontend", "v1", 9200,
                            ejecting=(("catalog", "catalog-2"),)),
                FakeSidecar("catalog-1", "catalog", "v1", 9201),
                FakeSidecar("catalog-2", "catalog", "v2", 9202),
                FakeSidecar("reviews-1", "reviews", "v1", 9203),
                FakeSidecar("reviews-2", "reviews", "v2", 9204,
                            nack_config="services.reviews.rate_limit.total: "
                                        "unknown key (an older sidecar)")]
    try:
        write_sample_graph(valkey.url, seconds=60)
        with tempfile.TemporaryDirectory() as work, meshui_server(
                valkey.url, Path(work), users={"olivia": "operator", "victor": "viewer"},
                MESHUI_USER_PASSWORD=POLICY_PASSWORD, MESHUI_PUBLIC_READ="false") as url:
            tokens = join_tokens(valkey.url, Path(work), {s.service for s in sidecars})
            with fake_sidecars(url, tokens, sidecars):
                shoot_policy_pages(url, out)
    finally:
        valkey.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--policy"]:
        policy_main(sys.argv[2])
    else:
        main(*sys.argv[1:])
