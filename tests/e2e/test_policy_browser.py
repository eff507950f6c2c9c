"""The traffic-split loop on one screen, in real Chromium, through the demo's real sidecars.

An operator opens catalog from the live graph while load runs through frontend, drags the
split from the seeded 80/20 to 50/50 with the slider (by key, which is exact), applies it,
sees every sidecar apply it without a reload and the observed share of v2 move to 50 %;
history shows the revision, and rolling back restores 80/20, and the observed share follows
it back. A viewer sees the same page with every control disabled. The page's own window
picker narrows the observed share to the last 10 s, so it moves within seconds.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from meshui.demo.mesh import PROJECT_ROOT, Mesh
from meshui.demo.topology import Instance
from tests.e2e.meshes import small_mesh
from tests.e2e.test_chaos import Load
from tests.meshui.browser import chromium, csp_problems, new_page, open_service_page, split_values

INSTANCES = (Instance("frontend", "v1"), Instance("catalog", "v1"), Instance("catalog", "v2"),
             Instance("inventory", "v1"))
SEED = "services:\n  catalog:\n    split: {v1: 80, v2: 20}\n"
VIEWER, VIEWER_PASSWORD = "vera", "viewer-password-for-e2e"
# The observed share is exact per request (the split is smooth weighted round robin), so
# what keeps it off the weights is only the window still holding calls from before a change.
SHARE_TOLERANCE = 5.0


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    with small_mesh(tmp_path_factory.mktemp("policy-browser"), "browser", INSTANCES,
                    policy=SEED) as mesh:
        subprocess.run([sys.executable, "manage.py", "ensure_user", VIEWER, "--role", "viewer"],
                       cwd=PROJECT_ROOT, env={**mesh.child_env(),
                                              "MESHUI_USER_PASSWORD": VIEWER_PASSWORD},
                       check=True, timeout=60, stdout=subprocess.DEVNULL)
        with Load(mesh, rps=25):
            yield mesh


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def logged_in(browser: Any, mesh: Mesh, username: str, password: str) -> tuple[Any, list[str]]:
    page, console = new_page(browser)
    page.goto(mesh.config.dashboard_url + "accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(mesh.config.dashboard_url)
    return page, console






def wait_for_observed_share(page: Any, version: str, target: float) -> None:
    """Until the page's live "observed N%" beside ``version``'s slider is within tolerance."""
    page.wait_for_function("""([version, target, tolerance]) => {
        const span = document.querySelector(`.observed[data-version="${version}"]`);
        const match = span && span.textContent.match(/observed ([\\d.]+)%/);
        return match !== null && Math.abs(Number(match[1]) - target) <= tolerance;
    }""", arg=[version, target, SHARE_TOLERANCE], timeout=40_000)


def wait_applied_on_all(page: Any, selector: str) -> None:
    page.wait_for_function(
        "(selector) => document.querySelector(selector).textContent.includes('applied on all')",
        arg=selector, timeout=20_000)


def test_an_operator_splits_50_50_sees_it_applied_and_observed_then_rolls_it_back(
    mesh: Mesh, browser: Any
) -> None:
    page, console = logged_in(browser, mesh, mesh.config.demo_user, mesh.config.demo_password)
    page.wait_for_selector('[data-node="catalog"]', timeout=20_000)
    open_service_page(page, "catalog")
    page.wait_for_url("**/services/catalog", timeout=10_000)
    page.click('.window-choices a[data-window="10"]')
    page.wait_for_url("**/services/catalog?window=10")
    page.evaluate("window.__sameDocument = true")
    assert split_values(page) == {"v1": 80, "v2": 20}
    wait_for_observed_share(page, "v2", 20)  # the seeded split, as the load sees it

    v2 = page.locator('.split-range[data-version="v2"]')
    v2.focus()
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    assert split_values(page) == {"v1": 50, "v2": 50}  # v1 rebalanced: the total stays 100
    page.click("#apply")
    page.wait_for_selector("#apply-dialog:not([hidden])")
    expect(page.locator("#apply-diff")).to_contain_text("+      v2: 50", timeout=10_000)
    page.fill("#apply-message", "even split")
    page.click("#apply-confirm")
    wait_applied_on_all(page, "#apply-progress")
    wait_for_observed_share(page, "v2", 50)
    even = int(page.locator("#loaded-revision").inner_text())
    # The heatmap marks the revision and gains a column, live (5 s columns over 5 min).
    expect(page.locator("#service-panel .heatmap")).to_contain_text(f"rev {even}", timeout=15_000)
    before = int(page.locator("#service-panel").get_attribute("data-last-column"))
    page.wait_for_function(
        "(before) => +document.getElementById('service-panel').dataset.lastColumn > before",
        arg=before, timeout=20_000)
    assert page.evaluate("window.__sameDocument") is True  # all of it live, no reload

    page.goto(mesh.config.dashboard_url + "policy/history")
    row = page.locator(f'tr[data-revision="{even}"]')
    assert "even split" in row.inner_text() and mesh.config.demo_user in row.inner_text()
    seed = page.locator('tr[data-revision="1"]')
    button = seed.locator(".rollback")
    button.click()
    assert button.inner_text() == "Confirm: roll back to 1"
    button.click()
    page.wait_for_url(f"**/policy/history?written={even + 1}")
    wait_applied_on_all(page, "#history-progress")

    page.goto(mesh.config.dashboard_url + "services/catalog?window=10")
    assert split_values(page) == {"v1": 80, "v2": 20}
    wait_for_observed_share(page, "v2", 20)
    assert csp_problems(page, console) == []
    page.close()


def test_a_viewer_sees_the_live_page_with_every_control_disabled(mesh: Mesh, browser: Any
                                                                 ) -> None:
    page, console = logged_in(browser, mesh, VIEWER, VIEWER_PASSWORD)
    page.goto(mesh.config.dashboard_url + "services/catalog?window=10")
    assert "needs the operator role" in page.locator("#read-only-note").inner_text()
    for selector in ('.split-range[data-version="v2"]', '.split-number[data-version="v2"]',
                     "#apply", "#route-add", "#f-load-balancer"):
        assert page.locator(selector).is_disabled(), selector
    wait_for_observed_share(page, "v2", 20)  # the numbers stay live for a viewer
    page.goto(mesh.config.dashboard_url + "policy/history")
    assert page.locator(".rollback").first.is_disabled()
    assert csp_problems(page, console) == []
    page.close()
