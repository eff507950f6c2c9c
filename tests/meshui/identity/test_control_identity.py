"""Joining and certificates over the control channel: a real channel layer, Redis, database
and CA (docs/control-channel.md, docs/security.md)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from meshui.accounts.roles import Role
from meshui.identity.models import Certificate, JoinToken, token_digest
from meshui.registry import consumers
from meshui.registry.models import Instance
from tests.clock import FakeClock
from tests.meshui.identity.pki import csr_pem
from tests.meshui.join_tokens import join_token
from tests.meshui.test_control_channel import hello, receive, receive_until, register, sidecar
from tests.meshui.test_control_hello import closed_with
from tests.meshui.users import make_user
from tests.meshui.websocket import WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)

PAYMENTS = "spiffe://meshui.local/service/payments"


async def handshake_refused(token: str, caplog: pytest.LogCaptureFixture, says: str) -> None:
    connected, code = await sidecar("payments", token=token).connect()
    assert not connected and code in (403, 1000, None)
    assert says in caplog.text and "10.0.0.7:5123" in caplog.text


async def test_unknown_expired_and_revoked_tokens_are_refused_at_the_handshake(
    meshui_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="meshui")
    await handshake_refused("mjt_nobody-has-this-one", caplog, "unknown join token")
    old = join_token("payments", "old", expires_at=timezone.now() - timedelta(seconds=1))
    await handshake_refused(old, caplog, "expired join token mjt_test-pay")
    gone = join_token("payments", "gone", revoked_at=timezone.now())
    await handshake_refused(gone, caplog, "revoked join token mjt_test-pay")


async def test_a_handshake_records_when_the_token_was_last_used(meshui_settings: Any) -> None:
    communicator = sidecar("payments")
    assert (await communicator.connect())[0]
    row = await database_sync_to_async(JoinToken.objects.get)(
        token_hash=token_digest(join_token("payments")))
    assert row.last_used_at is not None
    await communicator.disconnect()


async def test_a_payments_token_cannot_say_hello_as_catalog(meshui_settings: Any) -> None:
    communicator = sidecar("catalog", token=join_token("payments"))
    assert (await communicator.connect())[0]
    await communicator.send_json_to(hello("catalog-1", "catalog"))
    error = await receive(communicator)
    assert (error["type"], error["code"], error["field"]) == ("error", "identity_mismatch",
                                                              "service")
    assert "is for 'payments'" in error["reason"]
    assert await closed_with(communicator) == 4403
    assert not await database_sync_to_async(Instance.objects.exists)()


async def joined(service: str = "payments", proxy_id: str = "payments-1",
                 token: str | None = None) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    """A registered sidecar of ``service``, and the trust bundle it was sent after welcome."""
    communicator = sidecar(service, token=token)
    assert (await communicator.connect())[0]
    await communicator.send_json_to(hello(proxy_id, service))
    assert (await receive(communicator))["type"] == "welcome"
    bundle = await receive(communicator)
    assert bundle["type"] == "trust_bundle"
    return communicator, bundle


async def ask(communicator: WebsocketCommunicator, csr_id: int, pem: str) -> dict[str, Any]:
    await communicator.send_json_to({"type": "csr", "id": csr_id, "csr": pem})
    return await receive_until(communicator, lambda f: f["type"] in ("certificate", "error"))


async def test_a_good_csr_gets_a_certificate_frame_that_verifies_against_the_bundle(
    meshui_settings: Any,
) -> None:
    communicator, bundle = await joined()
    roots = x509.load_pem_x509_certificates(bundle["roots"].encode())
    assert len(bundle["version"]) == 16
    key = ec.generate_private_key(ec.SECP256R1())
    answer = await ask(communicator, 7, csr_pem(key, uri=PAYMENTS))
    assert answer["type"] == "certificate", answer
    assert (answer["id"], answer["spiffe_id"]) == (7, PAYMENTS)
    # The generated root signs the leaves itself: the chain is the leaf alone.
    (leaf,) = x509.load_pem_x509_certificates(answer["chain"].encode())
    assert leaf.public_key() == key.public_key()
    assert answer["serial"] == format(leaf.serial_number, "x")
    assert answer["not_before"] == int(leaf.not_valid_before_utc.timestamp())
    assert answer["not_after"] == int(leaf.not_valid_after_utc.timestamp())
    assert answer["not_after"] - answer["not_before"] == 86400 + 60
    assert answer["refresh_at"] == answer["not_before"] + 60 + 86400 * 2 // 3
    verifier = PolicyBuilder().store(Store(roots)).build_client_verifier()
    assert verifier.verify(leaf, []).subjects == [x509.UniformResourceIdentifier(PAYMENTS)]
    row = await database_sync_to_async(Certificate.objects.select_related("token").get)()
    assert (row.proxy_id, row.service, row.spiffe_id, row.serial) == (
        "payments-1", "payments", PAYMENTS, answer["serial"])
    assert row.token is not None and row.token.service == "payments"
    await communicator.disconnect()


async def test_a_payments_token_cannot_get_a_catalog_certificate(meshui_settings: Any) -> None:
    communicator, _ = await joined()
    answer = await ask(communicator, 1, csr_pem(uri="spiffe://meshui.local/service/catalog"))
    assert (answer["type"], answer["code"], answer["field"], answer["id"]) == (
        "error", "identity_mismatch", "csr", 1)
    answer = await ask(communicator, 2, "garbage")
    assert (answer["code"], answer["id"]) == ("bad_csr", 2)
    assert not await database_sync_to_async(Certificate.objects.exists)()
    # The connection goes on: a good CSR after them is signed.
    assert (await ask(communicator, 3, csr_pem()))["type"] == "certificate"
    await communicator.disconnect()


async def test_a_csr_before_hello_is_hello_first(meshui_settings: Any) -> None:
    communicator = sidecar("payments")
    await communicator.connect()
    await communicator.send_json_to({"type": "csr", "id": 1, "csr": csr_pem()})
    assert (await receive(communicator))["code"] == "hello_first"
    await communicator.disconnect()


async def test_more_than_six_csrs_a_minute_are_rate_limited(
    meshui_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(consumers, "_clock", clock)
    communicator, _ = await joined()
    pem = csr_pem()
    answers = [await ask(communicator, n, pem) for n in range(1, 8)]
    assert [a["type"] for a in answers] == ["certificate"] * 6 + ["error"]
    assert (answers[-1]["code"], answers[-1]["id"]) == ("rate_limited", 7)
    clock.advance(10)  # one CSR's worth of a minute
    assert (await ask(communicator, 8, pem))["type"] == "certificate"
    assert (await ask(communicator, 9, pem))["code"] == "rate_limited"
    await communicator.disconnect()


async def test_a_short_lifetime_raises_the_csr_rate_to_twice_its_renewals(
    meshui_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    meshui_settings.MESHUI_CERT_LIFETIME_S = 3  # renewals every 2 s: one CSR a second allowed
    clock = FakeClock()
    monkeypatch.setattr(consumers, "_clock", clock)
    communicator, _ = await joined()
    pem = csr_pem()
    for n in range(1, 7):
        assert (await ask(communicator, n, pem))["type"] == "certificate"
    assert (await ask(communicator, 7, pem))["code"] == "rate_limited"
    for n in range(8, 12):  # on schedule (and then some) for as long as it runs
        clock.advance(1)
        answer = await ask(communicator, n, pem)
        assert answer["type"] == "certificate", answer
        assert answer["not_after"] - answer["not_before"] == 3 + 60
    await communicator.disconnect()


def revoke_over_the_api(token: str) -> Any:
    admin = Client()
    admin.force_login(make_user("ada", Role.ADMIN))
    row = JoinToken.objects.get(token_hash=token_digest(token))
    return admin.delete(f"/api/v1/join-tokens/{row.pk}")


async def test_revoking_a_token_closes_its_live_connections_at_once_and_refuses_them_after(
    meshui_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="meshui")
    token = join_token("payments")
    one, _ = await joined(token=token)
    two, _ = await joined(proxy_id="payments-2", token=token)
    other, _ = await joined("catalog", "catalog-1")
    response = await database_sync_to_async(revoke_over_the_api)(token)
    assert response.status_code == 200
    for communicator in (one, two):
        error = await receive_until(communicator, lambda f: f["type"] == "error")
        assert error["code"] == "token_revoked"
        assert await closed_with(communicator) == 4401
    # Another token's connection is untouched.
    assert (await ask(other, 1, csr_pem()))["type"] == "certificate"
    await handshake_refused(token, caplog, "revoked join token")
    await other.disconnect()


async def test_a_csr_after_its_token_was_revoked_is_token_revoked_and_closed(
    meshui_settings: Any
) -> None:
    token = join_token("payments")
    communicator, _ = await joined(token=token)
    # Revoked behind the group's back (no message): the CSR's own check catches it.
    await database_sync_to_async(JoinToken.objects.filter(
        token_hash=token_digest(token)).update)(revoked_at=timezone.now())
    answer = await ask(communicator, 5, csr_pem())
    assert (answer["code"], answer["field"], answer["id"]) == ("token_revoked", "csr", 5)
    assert await closed_with(communicator) == 4401
    assert not await database_sync_to_async(Certificate.objects.exists)()


async def test_a_csr_after_its_token_expired_is_token_expired(meshui_settings: Any) -> None:
    token = join_token("payments")
    communicator, _ = await joined(token=token)
    await database_sync_to_async(JoinToken.objects.filter(
        token_hash=token_digest(token)).update)(expires_at=timezone.now())
    assert (await ask(communicator, 1, csr_pem()))["code"] == "token_expired"
    assert await closed_with(communicator) == 4401


def certificates() -> Any:
    viewer = Client()
    viewer.force_login(User.objects.get_or_create(username="victor")[0])
    return viewer.get("/api/v1/certificates").json()


async def test_the_certificates_api_shows_the_latest_certificate_and_its_rotation(
    meshui_settings: Any,
) -> None:
    communicator, _ = await joined()
    first = await ask(communicator, 1, csr_pem())
    second = await ask(communicator, 2, csr_pem())
    body = await database_sync_to_async(certificates)()
    (proxy,) = body["certificates"]
    assert (proxy["proxy_id"], proxy["service"], proxy["spiffe_id"]) == (
        "payments-1", "payments", PAYMENTS)
    assert proxy["serial"] == second["serial"] != first["serial"]
    assert proxy["renewals"] == 2
    assert proxy["last_rotation"] == proxy["issued_at"]
    assert proxy["connected"] is True and proxy["warnings"] == []
    await communicator.disconnect()
    assert (await database_sync_to_async(certificates)())["certificates"][0]["connected"] is False


async def test_register_still_works_for_helpers_that_skip_the_bundle(meshui_settings: Any) -> None:
    """The shared helper (test_control_channel.register) reads past trust_bundle."""
    communicator = sidecar("payments")
    endpoints = await register(communicator, hello("payments-1", "payments"))
    assert endpoints["type"] == "endpoints"
    await communicator.disconnect()
