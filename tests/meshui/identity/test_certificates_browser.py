"""The certificates page in real Chromium against a real uvicorn and Valkey: certificates
issued by meshui's own issuance code (one close to expiry is marked), the trust bundle to
download, a viewer who sees no join token, and an admin who creates a token, sees it once
in a box to copy, and revokes it after a confirmation; names from the network as text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from playwright.sync_api import expect

from tests.meshui.browser import HAVE_CHROMIUM, chromium, csp_problems, meshui_server, new_page
from tests.meshui.conftest import StoppableRedis
from tests.meshui.identity.issued import issue_on_server

pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Debian's chromium")

PASSWORD = "browser-user-password"
USERS = {"ada": "admin", "victor": "viewer"}
HOSTILE = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture(scope="module")
def valkey() -> Iterator[StoppableRedis]:
    server = StoppableRedis()
    yield server
    server.close()


@pytest.fixture(scope="module")
def server(valkey: StoppableRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("meshui")
    with meshui_server(valkey.url, workdir, users=USERS, MESHUI_USER_PASSWORD=PASSWORD,
                       MESHUI_PUBLIC_READ="false") as url:
        # payments-1 was issued 20 h ago (a 24 h lifetime): a quarter of it left, it warns.
        issue_on_server(valkey.url, workdir, [("catalog", "catalog-1", 0),
                                              ("payments", "payments-1", 20),
                                              ("reviews", HOSTILE, 1)])
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


def api(page: Any, server: str, method: str, path: str, body: dict[str, Any] | None = None
        ) -> tuple[int, Any]:
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.fetch(server + path, method=method,
                                  data=json.dumps(body) if body is not None else None,
                                  headers={"X-CSRFToken": token,
                                           "Content-Type": "application/json"})
    return response.status, response.json()


def test_a_viewer_sees_every_certificate_marks_the_one_close_to_expiry_and_no_token(
        server: str, browser: Any) -> None:
    page, console = logged_in(browser, server, "victor")
    page.click("nav >> text=Certificates")
    page.wait_for_url(server + "/certificates")
    rows = page.locator("#certificates tbody tr.cert-row")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).get_attribute("data-proxy") for i in range(3)] == [
        "catalog-1", "payments-1", HOSTILE]

    payments = page.locator('#certificates tr[data-proxy="payments-1"]')
    expect(payments).to_have_class(re.compile(r"\bcert-warn\b"))
    expect(payments.locator(".warnings")).to_have_text(re.compile(
        r"expires in [34] h \(not renewed at two thirds of its life\)"))
    expect(payments.locator(".not-after .ago")).to_have_text(re.compile(r"in (4 h|3 h \d+ min)"))
    expect(payments.locator(".spiffe")).to_have_text("spiffe://meshui.local/service/payments")
    catalog = page.locator('#certificates tr[data-proxy="catalog-1"]')
    expect(catalog).to_have_class(re.compile(r"\bcert-ok\b"))
    expect(catalog.locator(".not-after .ago")).to_have_text(re.compile(r"in (24 h|23 h \d+ min)"))
    expect(catalog.locator(".not-after .absolute")).to_have_text(
        re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"))
    expect(catalog.locator(".rotation")).to_have_text("never")
    expect(catalog.locator(".connected")).to_have_text("disconnected")
    expect(page.locator("#count-warnings")).to_have_text("1")
    expect(page.locator("#count-certs")).to_have_text("3")
    # A hostile proxy id is text, never markup.
    expect(page.locator(".certs-table .proxy strong").nth(2)).to_have_text(HOSTILE)
    assert page.evaluate("window.__pwned") is None

    # The trust bundle: its version, and the link gives the PEM the sidecars trust.
    href = page.locator("#bundle-download").get_attribute("href")
    bundle = page.request.get(server + href)
    assert bundle.status == 200
    (root,) = x509.load_pem_x509_certificates(bundle.body())
    assert root.subject.rfc4514_string() == "CN=meshui root CA meshui.local"
    expect(page.locator("#bundle-version")).to_have_text(bundle.headers["x-meshui-bundle-version"])
    expect(page.locator("#ca-banner")).to_have_count(0)

    # No join token controls for a viewer (the API would answer 403): where to go instead.
    expect(page.locator("#tokens-card")).to_have_count(0)
    expect(page.locator("#tokens-note")).to_contain_text("managed by admins")
    # Live: the page polls the API (the status line says when it last did).
    expect(page.locator("#certs-updated")).to_have_text(re.compile(r"updated \d\d:\d\d:\d\d"),
                                                        timeout=15000)
    assert csp_problems(page, console) == []
    page.close()


def test_an_admin_creates_a_join_token_sees_it_once_and_revokes_it(
        server: str, browser: Any) -> None:
    page, console = logged_in(browser, server, "ada")
    page.goto(server + "/certificates")
    # One made through the API is listed too.
    status, made = api(page, server, "POST", "/api/v1/join-tokens",
                       {"service": "catalog", "description": "from the API"})
    assert status == 201
    page.reload()
    expect(page.locator(f'#tokens tr[data-token="{made["id"]}"]')).to_contain_text("from the API")

    # A name the API refuses: the reason next to the field, nothing made.
    page.fill("#token-service", "Not_A_Label")
    page.click("#token-create")
    error = page.locator('[data-param="service"] .field-error')
    expect(error).to_be_visible()
    expect(error).to_contain_text("service")
    expect(page.locator("#token-once")).to_be_hidden()

    page.fill("#token-service", "payments")
    page.fill("#token-description", "payments in eu-1")
    page.select_option("#token-expires", str(7 * 86400))
    page.click("#token-create")
    box = page.locator("#token-once")
    expect(box).to_be_visible()
    token = page.input_value("#token-value")
    assert re.fullmatch(r"mjt_[A-Za-z0-9_-]{43}", token), token
    expect(box).to_contain_text("shown this once")
    expect(page.locator("#token-once-what")).to_contain_text(re.compile(r"for payments, "
                                                                        r"expires .*in 7 d"))
    status, listed = api(page, server, "GET", "/api/v1/join-tokens")
    created = next(t for t in listed["join_tokens"] if t["description"] == "payments in eu-1")
    assert created["prefix"] == token[:12] and created["state"] == "active"
    row = page.locator(f'#tokens tr[data-token="{created["id"]}"]')
    expect(row).to_contain_text(token[:12] + "…")
    expect(row.locator(".pill")).to_have_text("active")
    expect(row).not_to_contain_text(token)  # the list holds the prefix, never the token
    page.click("#token-copy")
    expect(page.locator("#token-copy")).to_have_text(re.compile(r"Copied|Select and copy"))

    # Dismissed, the token is gone from the page; reloaded, it is nowhere either.
    page.click("#token-done")
    expect(box).to_be_hidden()
    assert page.input_value("#token-value") == ""
    page.reload()
    expect(row).to_be_visible()
    assert token not in page.content()

    # Revoke, asked first: Cancel changes nothing; confirmed, it leaves the active list.
    row.locator("button.revoke").click()
    dialog = page.locator("#revoke-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#revoke-name")).to_have_text(f"{token[:12]}… for payments")
    page.click("#revoke-cancel")
    expect(dialog).to_be_hidden()
    assert api(page, server, "GET", "/api/v1/join-tokens")[1]["join_tokens"][0]["state"] == (
        "active")
    row.locator("button.revoke").click()
    page.click("#revoke-confirm")
    expect(dialog).to_be_hidden()
    expect(row).to_have_count(0)
    expect(page.locator("#tokens .hidden-tokens")).to_contain_text("1 revoked or expired")
    page.check("#tokens-all")
    expect(row.locator(".pill")).to_have_text("revoked")
    expect(row.locator("button.revoke")).to_have_count(0)
    states = {t["id"]: t["state"] for t in api(page, server, "GET",
                                                  "/api/v1/join-tokens")[1]["join_tokens"]}
    assert (states[created["id"]], states[made["id"]]) == ("revoked", "active")
    assert csp_problems(page, console) == []
    page.close()
