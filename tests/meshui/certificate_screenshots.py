"""Screenshots of the certificates page for review:
``python -m tests.meshui.certificate_screenshots OUT_DIR``.

Starts its own Valkey and meshui, shoots the empty state, issues certificates through
meshui's own issuance code (one renewed, one 20 h old of 24 h, so it warns, one expired),
connects fake sidecars for some of them, and shoots the page as an admin (a join token just
made, shown once) and as a viewer; then a meshui whose operator CA expires in 12 days (its
banner)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import sync_playwright

from tests.meshui.browser import CHROMIUM, CHROMIUM_ARGS, join_tokens, meshui_server
from tests.meshui.fake_sidecars import FakeSidecar, fake_sidecars
from tests.polling import wait_until

PASSWORD = "screenshot-password"
USERS = {"ada": "admin", "victor": "viewer"}
CERTIFICATES = [("catalog", "catalog-1", 30), ("catalog", "catalog-1", 14),
                ("catalog", "catalog-2", 2), ("frontend", "frontend-1", 1),
                ("payments", "payments-1", 20), ("payments", "payments-2", 26),
                ("reviews", "reviews-1", 0.2)]
LIVE = [FakeSidecar("catalog-1", "catalog", "v1", 9301), FakeSidecar("catalog-2", "catalog", "v2", 9302),
        FakeSidecar("frontend-1", "frontend", "v1", 9303),
        FakeSidecar("payments-1", "payments", "v1", 9304),
        FakeSidecar("reviews-1", "reviews", "v1", 9305)]


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


def shoot(browser: Any, url: str, out: Path, valkey_url: str, work: Path) -> None:
    from tests.meshui.identity.issued import issue_on_server

    admin = login(browser, url, "ada")
    admin.goto(url + "/certificates")
    admin.wait_for_selector("#no-certs:not([hidden])")
    admin.screenshot(path=str(out / "certificates-empty.png"))

    issue_on_server(valkey_url, work, CERTIFICATES)
    tokens = join_tokens(valkey_url, work, {s.service for s in LIVE})
    write(admin, url, "POST", "/api/v1/join-tokens",
          {"service": "ledger", "description": "ledger in eu-1, rotated quarterly"})
    gone = write(admin, url, "POST", "/api/v1/join-tokens", {"service": "payments"})
    write(admin, url, "DELETE", f"/api/v1/join-tokens/{gone['id']}", {})
    with fake_sidecars(url, tokens, LIVE):
        wait_until(lambda: sum(c["connected"] for c in admin.request.get(
            url + "/api/v1/certificates").json()["certificates"]) >= len(LIVE), timeout=15)
        admin.goto(url + "/certificates")
        admin.wait_for_selector("#tokens tbody tr.token-row")
        admin.fill("#token-service", "checkout")
        admin.fill("#token-description", "checkout canary")
        admin.click("#token-create")
        admin.wait_for_selector("#token-once:not([hidden])")
        admin.set_viewport_size({"width": 1440, "height": 1180})
        admin.screenshot(path=str(out / "certificates.png"), full_page=True)
        admin.locator("#tokens button.revoke").first.click()
        admin.wait_for_selector("#revoke-dialog:not([hidden])")
        admin.screenshot(path=str(out / "certificates-revoke.png"))
        viewer = login(browser, url, "victor")
        viewer.goto(url + "/certificates")
        viewer.wait_for_selector("#certificates tr.cert-row")
        viewer.screenshot(path=str(out / "certificates-viewer.png"), full_page=True)


def operator_ca(work: Path) -> dict[str, str]:
    """An operator's intermediate that expires in 12 days, under a root of ten years."""
    from datetime import UTC, datetime, timedelta

    from meshui.identity.root_store import new_root
    from tests.meshui.identity.pki import ca_certificate, write_pem

    now = datetime.now(UTC)
    root, root_key = new_root("meshui.local", now)
    key = ec.generate_private_key(ec.SECP256R1())
    soon = ca_certificate("corp mesh intermediate", key, root, root_key,
                          not_after=now + timedelta(days=12))
    return {"MESHUI_CA_CERT": str(write_pem(work / "ca.pem", soon, root)),
            "MESHUI_CA_KEY": str(write_pem(work / "ca.key", key))}


def main(out_dir: str) -> None:
    import os

    import django

    # The helpers below read meshui's models (issuance, the CA): Django first.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshui.settings")
    django.setup()
    from tests.meshui.conftest import StoppableRedis
    from tests.meshui.identity.issued import issue_on_server

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    valkey = StoppableRedis()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            with tempfile.TemporaryDirectory() as work, meshui_server(
                    valkey.url, Path(work), users=USERS, MESHUI_USER_PASSWORD=PASSWORD,
                    MESHUI_PUBLIC_READ="false") as url:
                shoot(browser, url, out, valkey.url, Path(work))
            with tempfile.TemporaryDirectory() as work:
                ca = operator_ca(Path(work))
                with meshui_server(valkey.url, Path(work), users=USERS,
                                   MESHUI_USER_PASSWORD=PASSWORD, MESHUI_PUBLIC_READ="false",
                                   **ca) as url:
                    issue_on_server(valkey.url, Path(work), CERTIFICATES[:3], **ca)
                    page = login(browser, url, "victor")
                    page.goto(url + "/certificates")
                    page.wait_for_selector("#ca-banner")
                    page.screenshot(path=str(out / "certificates-ca-warning.png"))
            browser.close()
    finally:
        valkey.close()


if __name__ == "__main__":
    main(sys.argv[1])
