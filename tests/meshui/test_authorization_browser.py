"""mTLS and authorization in the UI, in real Chromium against a real uvicorn and Redis: the
graph's padlocks and denial labels on a seeded graph, and the service page's authorization
editor: "Allow only what you see" -> an AUDIT revision -> who would be denied, live ->
Enforce -> an ALLOW revision -> who is denied, live; read-only for viewers; errors next to
their rule; no proposal without callers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.meshui.browser import HAVE_CHROMIUM, chromium, csp_problems, meshui_server, new_page
from tests.meshui.conftest import StoppableRedis
from tests.meshui.sample_security import DENIED, MIXED, NEWCOMER, write_caller, write_secure_graph

pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Debian's chromium")

PASSWORD = "browser-user-password"
USERS = {"olivia": "operator", "victor": "viewer"}


@pytest.fixture(scope="module")
def page_redis() -> Iterator[StoppableRedis]:
    server = StoppableRedis()
    yield server
    server.close()


@pytest.fixture(scope="module")
def server(page_redis: StoppableRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    write_secure_graph(page_redis.url, seconds=20)
    with meshui_server(page_redis.url, tmp_path_factory.mktemp("meshui"), users=USERS,
                       MESHUI_USER_PASSWORD=PASSWORD, MESHUI_PUBLIC_READ="false") as url:
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


def api(page: Any, server: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    token = next((c["value"] for c in page.context.cookies() if c["name"] == "csrftoken"), "")
    response = page.request.fetch(server + path, method=method, data=json.dumps(body) if body else None,
                                  headers={"X-CSRFToken": token, "Content-Type": "application/json"})
    return response.status, response.json()


def rules_of(page: Any, server: str, service: str) -> list[dict[str, Any]]:
    document = api(page, server, "GET", "/api/v1/policy")[1]["document"]
    return document["services"][service]["authorization"]["rules"]


def edge_index(page: Any, edge_id: str) -> int:
    return page.evaluate("(id) => document.getElementById('graph').data[0].customdata.indexOf(id)",
                         edge_id)


def test_the_graph_draws_padlocks_the_share_when_mixed_and_denial_labels(
    server: str, browser: Any
) -> None:
    page, console = logged_in(browser, server, "victor")
    page.wait_for_selector("#status.live", timeout=15000)
    mixed = edge_index(page, "->".join(MIXED))
    denied = edge_index(page, "->".join(DENIED))
    newcomer = edge_index(page, "->".join(NEWCOMER[:2]))
    outside = edge_index(page, "unknown->frontend")
    assert min(mixed, denied, newcomer, outside) >= 0
    layout = page.evaluate("""() => {
        const gd = document.getElementById('graph');
        return {shapes: gd.layout.shapes.map((s) => s.name || ''),
                texts: Object.fromEntries(gd.layout.annotations.filter((a) => a.name)
                                          .map((a) => [a.name, a.text]))};
    }""")
    assert f"padlock-{mixed}" in layout["shapes"] and f"padlock-{denied}" in layout["shapes"]
    assert f"padlock-{outside}" not in layout["shapes"]  # callers outside the mesh: none
    assert layout["texts"][f"mtls-{mixed}"] == "62%"
    assert layout["texts"][f"mtls-{denied}"] == " "  # all over mTLS: no number
    assert layout["texts"][f"denied-{denied}"].endswith(" denied")
    assert layout["texts"][f"audit-denied-{newcomer}"].endswith(" would be denied")
    # Drawn, not only described: Plotly's SVG has the labels' text and the padlocks' paths.
    drawn = page.locator("#graph .annotation-text")
    expect(drawn.filter(has_text="would be denied")).to_have_count(1)
    expect(drawn.filter(has_text="62%")).to_have_count(1)
    padlocks = {s for s in layout["shapes"] if s.startswith("padlock-")}
    # plate, body, shackle, keyhole
    assert page.locator("#graph .shapelayer path").count() >= 4 * len(padlocks)

    # The identities on hover of the padlock itself.
    box = page.locator(f'#graph .annotation[data-index="{layout_index(page, f"mtls-{mixed}")}"]')
    box.hover()
    hover = page.locator("#graph .hoverlayer")
    expect(hover).to_contain_text("spiffe://meshui.local/service/frontend", timeout=5000)
    expect(hover).to_contain_text("mTLS: 62% of requests")
    assert csp_problems(page, console) == []
    page.close()


def layout_index(page: Any, name: str) -> int:
    """The position of the annotation named ``name`` in the drawn layout (its data-index)."""
    return page.evaluate("(name) => document.getElementById('graph').layout.annotations"
                         ".findIndex((a) => a.name === name)", name)


def test_allow_only_what_you_see_audits_then_enforces_and_shows_who_is_denied_live(
    server: str, browser: Any, page_redis: StoppableRedis
) -> None:
    page, console = logged_in(browser, server, "olivia")
    page.goto(server + "/services/auth")
    expect(page.locator("#authz-mode")).to_have_text("no rules: every caller allowed")
    assert page.locator("#authz-enforce").is_disabled()

    page.select_option("#authz-window", "900")
    page.click("#authz-propose")
    proposals = page.locator(".authz-proposal")
    expect(proposals).to_have_count(2, timeout=10000)
    assert proposals.evaluate_all("(rows) => rows.map((r) => r.dataset.caller)") == ["frontend", "checkout"]
    assert page.locator(".authz-proposal code").all_inner_texts() == ["seen-frontend", "seen-checkout"]
    expect(page.locator("#authz-save")).to_have_text("Save 2 rules in audit mode…")

    page.click("#authz-save")
    page.wait_for_selector("#apply-dialog:not([hidden])")
    expect(page.locator("#apply-diff")).to_contain_text("seen-checkout", timeout=10000)
    expect(page.locator("#apply-diff")).to_contain_text("AUDIT")
    assert "allow only what you see (last 15 min): frontend, checkout" in page.input_value("#apply-message")
    page.click("#apply-confirm")
    expect(page.locator("#authz-mode")).to_have_text("audit: 2 rules on trial", timeout=10000)
    assert rules_of(page, server, "auth") == [
        {"name": "seen-frontend", "action": "AUDIT", "sources": ["frontend"]},
        {"name": "seen-checkout", "action": "AUDIT", "sources": ["checkout"]}]

    # A caller the rules on trial do not name: its sidecar-counted would-be denials, live.
    write_caller(page_redis.url, "search", "auth", 9, mtls=9, audit_denied=9)
    row = page.locator('#authz-callers tr[data-caller="search"]')
    expect(row.locator(".would-deny.amber")).to_have_text("9", timeout=10000)
    expect(page.locator("#authz-live-summary .amber")).to_have_text("9 would be denied")

    page.click("#authz-enforce")
    page.wait_for_selector("#enforce-dialog:not([hidden])")
    expect(page.locator('#enforce-denied li[data-caller="search"]')).to_contain_text(
        "search — 9 of 9 requests")
    expect(page.locator("#enforce-consequences")).to_contain_text("Allowed: frontend, checkout")
    expect(page.locator("#enforce-diff")).to_contain_text("ALLOW", timeout=10000)
    expect(page.locator("#enforce-confirm")).to_be_enabled()
    page.click("#enforce-confirm")
    expect(page.locator("#authz-mode")).to_have_text("enforcing: 2 ALLOW rules", timeout=10000)
    assert [r["action"] for r in rules_of(page, server, "auth")] == ["ALLOW", "ALLOW"]
    revision = api(page, server, "GET", "/api/v1/policy")[1]
    assert revision["source"] == "ui" and "AUDIT -> ALLOW" in revision["message"]
    expect(page.locator("#loaded-revision")).to_have_text(str(revision["revision"]))

    # Enforced: the callers' sidecar-counted denials, in red.
    write_caller(page_redis.url, "search", "auth", 4, mtls=4, denied=4)
    expect(row.locator(".denied.red")).to_have_text("4", timeout=10000)
    assert csp_problems(page, console) == []
    page.close()


def test_callers_from_outside_the_mesh_are_proposed_with_a_note(server: str, browser: Any) -> None:
    page, console = logged_in(browser, server, "olivia")
    page.goto(server + "/services/frontend")
    page.click("#authz-propose")
    proposal = page.locator('.authz-proposal[data-caller="unknown"]')
    expect(proposal).to_contain_text("seen-unknown")
    expect(proposal.locator(".authz-outside")).to_contain_text("callers from outside the mesh")
    proposal.locator(".authz-proposal-remove").click()  # reviewed: left out
    expect(page.locator(".authz-proposal")).to_have_count(0)
    assert page.locator("#authz-save").is_disabled()
    assert csp_problems(page, console) == []
    page.close()


def test_without_callers_in_the_window_nothing_is_proposed(server: str, browser: Any) -> None:
    page, console = logged_in(browser, server, "olivia")
    status, _ = api(page, server, "PATCH", "/api/v1/policy/services/billing",
                    {"patch": {"retries": {"attempts": 1}},
                     "parent": api(page, server, "GET", "/api/v1/policy")[1]["revision"]})
    assert status == 201
    page.goto(server + "/services/billing")
    page.click("#authz-propose")
    expect(page.locator("#authz-empty")).to_contain_text(
        "No caller of billing was seen in the last 15 min, so there is nothing to propose")
    expect(page.locator("#authz-empty")).to_contain_text("would deny every request")
    assert page.locator("#authz-save").count() == 0
    expect(page.locator("#authz-callers tbody")).to_have_text("No caller in the last minute.")
    assert csp_problems(page, console) == []
    page.close()


def test_a_bad_rule_name_is_refused_next_to_its_rule(server: str, browser: Any) -> None:
    page, console = logged_in(browser, server, "olivia")
    page.goto(server + "/services/ledger")
    page.click("#authz-add")
    name = page.locator('.authz-rule[data-index="0"] .authz-name')
    name.fill("not a token!")
    name.press("Tab")
    expect(page.locator("#change-count")).to_have_text("1 section changed")
    page.click("#apply")
    slot = page.locator('.authz-rule[data-index="0"] .field-error')
    expect(slot).to_contain_text("authorization.rules[0].name", timeout=10000)
    expect(slot).to_contain_text("letters, digits")
    assert page.locator("#apply-confirm").is_disabled()
    assert csp_problems(page, console) == []
    page.close()


def test_a_viewer_sees_the_rules_read_only(server: str, browser: Any) -> None:
    operator, _ = logged_in(browser, server, "olivia")
    parent = api(operator, server, "GET", "/api/v1/policy")[1]["revision"]
    status, _ = api(operator, server, "PATCH", "/api/v1/policy/services/inventory", {
        "patch": {"authorization": {"rules": [
            {"name": "seen-catalog", "action": "AUDIT", "sources": ["catalog"]},
            {"name": "no-admin", "action": "DENY", "path_prefix": "/admin"}]}}, "parent": parent})
    assert status == 201
    operator.close()
    page, console = logged_in(browser, server, "victor")
    page.goto(server + "/services/inventory")
    rules = page.locator(".authz-rule")
    expect(rules).to_have_count(2)
    assert page.locator(".authz-rule .authz-name").evaluate_all("(i) => i.map((e) => e.value)") == [
        "seen-catalog", "no-admin"]
    for selector in ("#authz-propose", "#authz-add", "#authz-enforce", ".authz-rule .authz-name",
                     ".authz-rule .authz-action", ".authz-rule .authz-delete"):
        assert page.locator(selector).first.is_disabled(), selector
    assert "needs the operator role" in page.locator("#authz-propose").get_attribute("title")
    expect(page.locator("#authz-mode")).to_have_text("audit: 1 rule on trial")
    assert csp_problems(page, console) == []
    page.close()
