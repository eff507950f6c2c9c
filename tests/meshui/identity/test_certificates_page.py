"""The certificates page through Django's test client: who reads it, who gets the join token
controls, the empty state, the CA's banner, and names from the network kept as text."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client
from django.utils import timezone

from meshui.accounts.roles import Role
from meshui.identity.authority import current_authority
from meshui.identity.listing import certificate_listing
from meshui.identity.root_store import new_root
from tests.meshui.identity.issued import issue_certificate
from tests.meshui.identity.pki import ca_certificate, now, write_pem
from tests.meshui.users import make_user

pytestmark = pytest.mark.django_db

HOSTILE = '<img src=x onerror="window.__pwned=1">'


def client_of(username: str, role: Role | None) -> Client:
    client = Client()
    client.force_login(make_user(username, role))
    return client


@pytest.fixture
def viewer(meshui_settings: Any) -> Client:
    return client_of("victor", Role.VIEWER)


@pytest.fixture
def admin(meshui_settings: Any) -> Client:
    return client_of("ada", Role.ADMIN)


def json_script(page: str, element_id: str) -> Any:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>',
                      page, re.S)
    assert match, element_id
    return json.loads(match.group(1))


def test_a_viewer_reads_every_certificate_but_no_join_token(viewer: Client) -> None:
    issued = issue_certificate("payments", "payments-1",
                               at=timezone.now() - timedelta(hours=20))
    issue_certificate("catalog", "catalog-1")
    response = viewer.get("/certificates")
    assert response.status_code == 200
    page = response.content.decode()
    assert re.search(r'href="/certificates" class="active">Certificates</a>', page)
    data = json_script(page, "certificates-page")
    listing = data["listing"]
    assert [c["proxy_id"] for c in listing["certificates"]] == ["catalog-1", "payments-1"]
    assert listing == certificate_listing(current_authority(), timezone.now()) | {
        "certificates": listing["certificates"]}
    assert listing["certificates"][1]["serial"] == issued["serial"]
    assert listing["certificates"][1]["warnings"][0].startswith("expires in ")
    assert data["poll_ms"] > 0
    # Certificates, the CA, the bundle: for everyone who reads.
    assert 'id="no-certs" hidden' in page and 'id="certs-card" hidden' not in page
    assert 'href="/api/v1/mesh/trust-bundle" download=' in page
    assert listing["ca"]["bundle_version"] in page
    assert "CN=meshui root CA meshui.local" in page
    assert 'id="ca-banner"' not in page  # a new root: nothing to warn of
    # Join tokens: the API answers a viewer 403, so the page has no controls, only where to go.
    assert data["tokens"] == {"allowed": False,
                              "reason": "Join tokens need the admin role; victor is not an "
                                        "admin."}
    assert 'id="tokens-card"' not in page and 'id="revoke-dialog"' not in page
    assert 'id="tokens-note"' in page and "meshctl token create --service NAME" in page


def test_an_admin_gets_the_join_token_controls(admin: Client) -> None:
    page = admin.get("/certificates").content.decode()
    assert json_script(page, "certificates-page")["tokens"] == {"allowed": True, "reason": ""}
    for element in ('id="tokens-card"', 'id="token-form"', 'id="token-once" hidden',
                    'id="revoke-dialog" hidden', 'id="tokens-all"'):
        assert element in page, element
    assert '<option value="2592000" selected>30 days</option>' in page
    assert 'id="tokens-note"' not in page


def test_with_no_certificate_the_page_says_how_to_join(admin: Client) -> None:
    page = admin.get("/certificates").content.decode()
    assert 'id="certs-card" hidden' in page and 'id="no-certs" hidden' not in page
    assert "No sidecar holds a certificate yet" in page
    for hint in ("python manage.py join_token --service NAME",
                 "meshctl token create --service NAME", "<code>--token TOKEN</code>"):
        assert hint in page, hint


def test_a_ca_close_to_its_end_has_a_banner(meshui_settings: Any, tmp_path: Path,
                                            viewer: Client) -> None:
    root, root_key = new_root("meshui.local", now())
    key = ec.generate_private_key(ec.SECP256R1())
    soon = ca_certificate("corp intermediate", key, root, root_key,
                          not_after=now() + timedelta(days=10))
    meshui_settings.MESHUI_CA_CERT = str(write_pem(tmp_path / "ca.pem", soon, root))
    meshui_settings.MESHUI_CA_KEY = str(write_pem(tmp_path / "ca.key", key))
    page = viewer.get("/certificates").content.decode()
    banner = re.search(r'<div class="banner ca-banner" id="ca-banner" role="alert">(.*?)</div>\n'
                       r'</div>', page, re.S)
    assert banner, page
    assert re.search(r'<p class="ca-warning">CN=corp intermediate expires in (9|10) d</p>',
                     banner.group(1))
    assert "CA · operator" in page


def test_names_from_the_network_stay_text(viewer: Client) -> None:
    issue_certificate("payments", HOSTILE)
    page = viewer.get("/certificates").content.decode()
    assert "<img" not in page
    listing = json_script(page, "certificates-page")["listing"]
    assert listing["certificates"][0]["proxy_id"] == HOSTILE


def test_reading_needs_a_login_unless_public_read(meshui_settings: Any) -> None:
    response = Client().get("/certificates")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    meshui_settings.MESHUI_PUBLIC_READ = True
    page = Client().get("/certificates").content.decode()
    assert "Join tokens need the admin role: log in as an admin." in page
