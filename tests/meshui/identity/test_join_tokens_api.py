"""Join tokens through the API and manage.py: admin only, hashed at rest, audited."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from cryptography import x509
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.utils import timezone

from meshui.accounts.roles import Role
from meshui.identity.models import Certificate, JoinToken, token_digest
from meshui.policy.models import AuditEntry
from meshui.registry.models import Instance, Service
from tests.meshui.users import make_user

pytestmark = pytest.mark.django_db


def client_of(role: Role | None, name: str) -> Client:
    client = Client()
    client.force_login(make_user(name, role))
    return client


@pytest.fixture
def admin(meshui_settings: Any) -> Client:
    return client_of(Role.ADMIN, "ada")


def create(client: Client, **body: Any) -> Any:
    return client.post("/api/v1/join-tokens", {"service": "payments", **body},
                       content_type="application/json")


def test_an_admin_creates_a_token_shown_once_and_stored_only_as_its_hash(admin: Client) -> None:
    response = create(admin, description="payments in eu-1")
    assert response.status_code == 201, response.content
    body = response.json()
    token = body.pop("token")
    assert token.startswith("mjt_") and len(token) >= 40
    assert body["prefix"] == token[:12]
    assert (body["service"], body["state"], body["created_by"]) == ("payments", "active", "ada")
    assert body["revoked_at"] is None and body["last_used_at"] is None
    row = JoinToken.objects.get()
    assert row.token_hash == token_digest(token)
    # Nowhere in the database is the token's text.
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM identity_jointoken")
        assert all(token not in str(value) for value in cursor.fetchone())
    listed = admin.get("/api/v1/join-tokens").json()["join_tokens"]
    assert [t["id"] for t in listed] == [body["id"]] and "token" not in listed[0]
    assert timedelta(days=29, hours=23) < row.expires_at - row.created_at <= timedelta(days=30)


def test_expires_in_s_is_bounded_and_sets_the_expiry(admin: Client) -> None:
    assert create(admin, expires_in_s=59).status_code == 400
    assert create(admin, expires_in_s=366 * 86400).status_code == 400
    body = create(admin, expires_in_s=3600).json()
    row = JoinToken.objects.get(pk=body["id"])
    assert row.expires_at - row.created_at == timedelta(seconds=3600)


def test_a_bad_service_name_is_invalid_parameter(admin: Client) -> None:
    response = create(admin, service="Not_A-Label")
    assert response.status_code == 400
    assert response.json()["parameter"] == "service"


def test_an_expired_token_lists_as_expired(admin: Client) -> None:
    body = create(admin).json()
    JoinToken.objects.filter(pk=body["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    (listed,) = admin.get("/api/v1/join-tokens").json()["join_tokens"]
    assert listed["state"] == "expired"


def test_revoking_keeps_the_row_is_idempotent_and_audited(admin: Client) -> None:
    body = create(admin).json()
    first = admin.delete(f"/api/v1/join-tokens/{body['id']}")
    assert first.status_code == 200
    assert first.json()["state"] == "revoked" and first.json()["revoked_at"] is not None
    again = admin.delete(f"/api/v1/join-tokens/{body['id']}")
    assert again.status_code == 200 and again.json()["revoked_at"] == first.json()["revoked_at"]
    assert admin.delete("/api/v1/join-tokens/999").status_code == 404
    actions = list(AuditEntry.objects.order_by("pk").values_list("action", "username", "detail"))
    assert [(a, u) for a, u, _ in actions] == [("join_token_created", "ada"),
                                               ("join_token_revoked", "ada")]
    assert body["prefix"] in actions[1][2] and "'payments'" in actions[1][2]


@pytest.mark.parametrize("role", [None, Role.OPERATOR])
def test_viewers_and_operators_are_refused_403_and_writes_are_audited(
    meshui_settings: Any, role: Role | None
) -> None:
    client = client_of(role, "olivia")
    row, _ = JoinToken.issue("payments")
    assert client.get("/api/v1/join-tokens").status_code == 403
    assert create(client).status_code == 403
    assert client.delete(f"/api/v1/join-tokens/{row.pk}").status_code == 403
    assert JoinToken.objects.count() == 1 and JoinToken.objects.get().revoked_at is None
    # The refused writes are audited (the refused read is only answered).
    refused = sorted(AuditEntry.objects.values_list("action", "path"))
    assert refused == [("refused", "/api/v1/join-tokens"),
                       ("refused", f"/api/v1/join-tokens/{row.pk}")]


def test_anonymous_callers_are_401_even_under_public_read(meshui_settings: Any) -> None:
    meshui_settings.MESHUI_PUBLIC_READ = True
    assert Client().get("/api/v1/join-tokens").status_code == 401


def test_the_command_prints_only_the_token_and_audits_it(meshui_settings: Any) -> None:
    out = StringIO()
    call_command("join_token", "--service", "catalog", "--expires-in", "600",
                 "--description", "e2e", stdout=out)
    token = out.getvalue().strip()
    assert out.getvalue().count("\n") <= 1 and token.startswith("mjt_")
    row = JoinToken.objects.get(token_hash=token_digest(token))
    assert (row.service, row.description, row.created_by_name) == ("catalog", "e2e", "manage.py")
    assert row.expires_at - row.created_at == timedelta(seconds=600)
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.path) == ("join_token_created", "manage.py join_token")
    with pytest.raises(CommandError, match="--service"):
        call_command("join_token", "--service", "Bad Name", stdout=StringIO())
    with pytest.raises(CommandError, match="--expires-in"):
        call_command("join_token", "--service", "catalog", "--expires-in", "5", stdout=StringIO())


def test_the_command_writes_token_files_and_replaces_the_last_run_s(meshui_settings: Any,
                                                                   tmp_path: Any) -> None:
    for _ in range(2):  # the demo at every start
        call_command("join_token", "--service", "catalog", "payments", "--description", "demo",
                     "--replace", "--output-dir", str(tmp_path), stdout=StringIO())
    tokens = {s: (tmp_path / f"{s}.token").read_text().strip() for s in ("catalog", "payments")}
    assert all(oct((tmp_path / f"{s}.token").stat().st_mode & 0o777) == "0o600" for s in tokens)
    for service, token in tokens.items():
        row = JoinToken.objects.get(token_hash=token_digest(token))
        assert row.service == service and row.revoked_at is None
    # The first run's two tokens were revoked by the second, and said so in the audit log.
    assert JoinToken.objects.filter(revoked_at__isnull=False).count() == 2
    assert AuditEntry.objects.filter(action="join_token_revoked").count() == 2
    with pytest.raises(CommandError, match="--output-dir"):
        call_command("join_token", "--service", "a", "b", stdout=StringIO())


def test_the_trust_bundle_is_open_pem(meshui_settings: Any) -> None:
    response = Client().get("/api/v1/mesh/trust-bundle")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-pem-file"
    (root,) = x509.load_pem_x509_certificates(response.content)
    assert root.subject.rfc4514_string() == "CN=meshui root CA meshui.local"
    assert len(response["X-Meshui-Bundle-Version"]) == 16


def test_the_certificates_list_shows_each_proxy_s_latest_and_warns_before_expiry(
    meshui_settings: Any,
) -> None:
    now = timezone.now()
    row, _ = JoinToken.issue("payments")
    for n, (issued, lifetime) in enumerate([(now - timedelta(hours=30), 24),
                                            (now - timedelta(hours=19.5), 24)]):
        Certificate.objects.create(
            proxy_id="payments-1", service="payments",
            spiffe_id="spiffe://meshui.local/service/payments", serial=f"a{n}",
            not_before=issued - timedelta(seconds=60),
            not_after=issued + timedelta(hours=lifetime), issued_at=issued, token=row)
    Certificate.objects.create(
        proxy_id="payments-2", service="payments", spiffe_id="spiffe://meshui.local/service/payments",
        serial="b0", not_before=now - timedelta(hours=1), not_after=now + timedelta(hours=23),
        issued_at=now - timedelta(hours=1), token=row)
    Instance.objects.create(proxy_id="payments-2", service=Service.objects.create(name="payments"),
                            address="127.0.0.1:1", connected=True, last_seen=now)
    viewer = client_of(None, "victor")
    body = viewer.get("/api/v1/certificates").json()
    first, second = body["certificates"]
    assert (first["proxy_id"], first["serial"], first["renewals"]) == ("payments-1", "a1", 2)
    assert first["last_rotation"] == first["issued_at"]
    assert first["warnings"] == ["expires in 4 h (not renewed at two thirds of its life)"]
    assert first["connected"] is False
    assert (second["serial"], second["renewals"], second["last_rotation"]) == ("b0", 1, None)
    assert second["connected"] is True and second["warnings"] == []
    assert body["ca"]["subject"] == "CN=meshui root CA meshui.local"
    assert body["ca"]["warnings"] == [] and body["ca"]["source"] == "generated"
