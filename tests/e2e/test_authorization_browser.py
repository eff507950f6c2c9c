""""Allow only what you see" in real Chromium, through the demo's real sidecars over mTLS.

Load runs through frontend (frontend -> catalog -> inventory). An operator opens inventory's
page, has the callers seen proposed (catalog), saves them in AUDIT, sees the demo's normal
traffic would lose nothing and a new caller would be denied, enforces in one step, and then
the normal traffic still gets through while a request from the new caller gets 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from meshui.demo.mesh import Mesh
from meshui.demo.topology import Instance
from tests.e2e.meshes import small_mesh
from tests.e2e.test_chaos import Load
from tests.meshui.browser import chromium, csp_problems, new_page
from tests.polling import settled, wait_until

INSTANCES = (Instance("frontend", "v1"), Instance("catalog", "v1"), Instance("inventory", "v1"))


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    with small_mesh(tmp_path_factory.mktemp("authz-browser"), "authz", INSTANCES) as mesh:
        yield mesh


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def api(mesh: Mesh, path: str) -> Any:
    headers = {"Authorization": f"Bearer {mesh.demo_token()}"}
    response = httpx.get(f"{mesh.config.dashboard_url}api/v1/{path}", headers=headers, timeout=10,
                         trust_env=False)
    response.raise_for_status()
    return response.json()


def inventory_edge(mesh: Mesh, source: str) -> dict[str, Any] | None:
    edges = api(mesh, "graph?window=60")["edges"]
    return next((e for e in edges if (e["source"], e["target"]) == (source, "inventory")), None)


def new_caller(mesh: Mesh) -> httpx.Response:
    """A caller inventory never saw: straight to its sidecar, from outside the mesh."""
    return httpx.get(mesh.config.inbound_url("inventory") + "/stock", headers={"host": "inventory"},
                     timeout=10, trust_env=False)


def test_allow_only_what_you_see_denies_nothing_of_the_demo_s_traffic_and_a_new_caller(
        mesh: Mesh, browser: Any) -> None:
    # Load only once every sidecar holds its certificate: calls made before go in plaintext.
    def identity(index: int) -> dict[str, Any]:
        url = f"http://{mesh.config.host}:{mesh.config.ports(index).admin}/identity"
        return httpx.get(url, timeout=5, trust_env=False).json()
    wait_until(lambda: all(identity(i)["mtls"] for i in range(len(INSTANCES))), 30,
               what="every sidecar's certificate")
    # The hop catalog -> inventory is seen, every call of it over mTLS. The two counts come
    # from different sidecars' exports (requests from catalog's spans, mTLS from inventory's
    # metrics), so they are compared once a warm-up's telemetry has all landed.
    with Load(mesh, rps=20) as warmup:
        wait_until(lambda: len(warmup.outcomes) >= 30, 30, what="the warm-up's calls")
    def hop() -> tuple[int, int] | None:
        edge = inventory_edge(mesh, "catalog")
        return None if edge is None else (edge["requests"], edge["events"]["mtls"])
    requests, mtls = settled(hop, timeout=45, what="catalog -> inventory")
    assert requests >= 20 and mtls == requests
    with Load(mesh, rps=20) as load:
        page, console = new_page(browser)
        page.goto(mesh.config.dashboard_url + "accounts/login/")
        page.fill("input[name=username]", mesh.config.demo_user)
        page.fill("input[name=password]", mesh.config.demo_password)
        page.click("button[type=submit]")
        page.wait_for_url(mesh.config.dashboard_url)
        page.goto(mesh.config.dashboard_url + "services/inventory")
        page.select_option("#authz-window", "900")
        page.click("#authz-propose")
        proposals = page.locator(".authz-proposal")
        expect(proposals).to_have_count(1, timeout=15000)
        assert proposals.evaluate_all("(rows) => rows.map((r) => r.dataset.caller)") == ["catalog"]
        page.click("#authz-save")
        page.wait_for_selector("#apply-dialog:not([hidden])")
        expect(page.locator("#apply-diff")).to_contain_text("AUDIT", timeout=10000)
        page.click("#apply-confirm")
        expect(page.locator("#authz-mode")).to_have_text("audit: 1 rule on trial", timeout=15000)
        wait_until(lambda: api(mesh, "proxies")["summary"]["synced"] == len(INSTANCES), 20,
                   what="the AUDIT revision on every sidecar")

        # A new caller is let through while on trial, and shows as would-be-denied, live.
        assert new_caller(mesh).status_code == 200
        row = page.locator('#authz-callers tr[data-caller="unknown"]')
        expect(row.locator(".would-deny.amber")).to_have_text("1", timeout=20000)
        # The demo's own traffic would lose nothing.
        catalog_row = page.locator('#authz-callers tr[data-caller="catalog"]')
        expect(catalog_row.locator(".would-deny")).to_have_text("–")

        page.click("#authz-enforce")
        page.wait_for_selector("#enforce-dialog:not([hidden])")
        expect(page.locator('#enforce-denied li[data-caller="unknown"]')).to_be_visible(timeout=10000)
        expect(page.locator("#enforce-confirm")).to_be_enabled(timeout=10000)
        page.click("#enforce-confirm")
        expect(page.locator("#authz-mode")).to_have_text("enforcing: 1 ALLOW rule", timeout=15000)
        revision = api(mesh, "policy")["revision"]
        def synced_on(revision: int) -> bool:
            summary = api(mesh, "proxies")["summary"]
            return (summary["revision"], summary["synced"]) == (revision, len(INSTANCES))
        wait_until(lambda: synced_on(revision), 20, what="the enforcing revision on every sidecar")
        sent = len(load.outcomes)
        wait_until(lambda: len(load.outcomes) >= sent + 40, 30, what="more of the demo's traffic")
        # Enforced: a new caller is denied with the header naming why...
        denied = new_caller(mesh)
        assert denied.status_code == 403
        assert denied.headers["x-meshui-denied"] == "default-deny"
        expect(row.locator(".denied.red")).to_have_text("1", timeout=20000)
        assert csp_problems(page, console) == []
        page.close()
    # ...and the demo's traffic lost nothing: no denial on catalog -> inventory, no failure.
    edge = inventory_edge(mesh, "catalog")
    assert edge is not None and edge["events"]["denied"] == 0 and edge["errors"] == 0
    assert load.outcomes and load.failures() == [], load.failures()
