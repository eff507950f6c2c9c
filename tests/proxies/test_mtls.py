"""Mutual TLS between real sidecars on loopback: identities, STRICT and PERMISSIVE, refusals."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

import pytest

from proxies.policy.parser import parse_policy
from tests.polling import eventually
from tests.ports import free_port
from tests.proxies.conftest import RecordingTelemetry, simple_app, start_sidecar
from tests.proxies.mesh_ca import MeshCA
from tests.proxies.mtls_mesh import Mesh, client_context, request

STRICT = parse_policy({"default": {"mtls": {"mode": "STRICT"}}})


@pytest.fixture
def ca() -> MeshCA:
    return MeshCA()


@pytest.fixture
async def mesh(tmp_path: Path, ca: MeshCA):
    m = Mesh(tmp_path, ca)
    yield m
    await m.stop()


GET = b"GET /pay HTTP/1.1\r\nHost: payments\r\n\r\n"


async def test_sidecar_to_sidecar_goes_over_mutual_tls_with_verified_identities(servers, mesh) -> None:
    await mesh.start(servers)
    status, _, body = await request(mesh.frontend.ports["outbound"], GET)
    assert status.startswith(b"HTTP/1.1 200"), body
    # The payments sidecar counted it as mTLS, from the identity in frontend's certificate.
    assert mesh.payments.plane.metrics.mtls_total == 1
    assert mesh.payments_telemetry.requests[-1][:2] == ("inbound", "frontend")
    edges = mesh.payments.plane.metrics.edges.counts
    assert edges[("meshui.proxy.mtls.requests", "frontend", "payments", ())] == 1
    # The pooled connection frontend keeps is a TLS 1.3 one to the payments identity.
    (pool,) = [p for p in mesh.frontend.plane.pools.values() if p.service == "payments"]
    (conn,) = pool.idle
    ssl_object = conn.transport.get_extra_info("ssl_object")
    assert ssl_object is not None and ssl_object.version() == "TLSv1.3"
    assert mesh.frontend.identity.peer_service(ssl_object.getpeercert()) == "payments"


async def test_the_certificate_names_the_caller_not_its_header(servers, mesh) -> None:
    await mesh.start(servers)
    spoofed = b"GET /pay HTTP/1.1\r\nHost: payments\r\nx-meshui-source: admin\r\n\r\n"
    key, chain = mesh.ca.issue("checkout")
    status, _, _ = await request(mesh.inbound, spoofed, client_context(mesh.ca, chain, key, mesh.tmp))
    assert status.startswith(b"HTTP/1.1 200")
    assert mesh.payments_telemetry.requests[-1][:2] == ("inbound", "checkout")


async def test_permissive_takes_plaintext_too_and_counts_it_apart(servers, mesh) -> None:
    await mesh.start(servers)
    status, _, _ = await request(mesh.inbound, GET)
    assert status.startswith(b"HTTP/1.1 200")
    assert mesh.payments.plane.metrics.mtls_total == 0
    assert mesh.payments_telemetry.requests[-1][:2] == ("inbound", "unknown")


async def test_strict_refuses_plaintext_with_a_403_a_person_can_read(servers, mesh) -> None:
    await mesh.start(servers, payments_policy=STRICT)
    status, headers, body = await request(mesh.inbound, GET)
    assert status.startswith(b"HTTP/1.1 403")
    assert headers[b"x-meshui-error"] == b"mtls-required"
    assert b"STRICT" in body
    assert mesh.refused("inbound", "plaintext") == 1
    assert mesh.payments_telemetry.requests == []  # the app never saw it
    # Sidecars still get through.
    status, _, _ = await request(mesh.frontend.ports["outbound"], GET)
    assert status.startswith(b"HTTP/1.1 200")


async def refused_handshake(port: int, context: ssl.SSLContext) -> bool:
    """Whether the server refused this TLS client (in TLS 1.3 a refused client certificate
    shows on the client's first read, not in its handshake)."""
    try:
        status, _, _ = await request(port, GET, context)
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
        return True
    return not status.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    "case", ["no certificate", "another CA", "expired", "no SPIFFE ID", "other trust domain"])
async def test_strict_refuses_clients_without_a_good_mesh_certificate(servers, mesh, case) -> None:
    await mesh.start(servers, payments_policy=STRICT)
    ca, tmp = mesh.ca, mesh.tmp
    if case == "no certificate":
        context, reason = client_context(ca), "handshake"
    elif case == "another CA":
        key, chain = MeshCA("impostor").issue("frontend")
        context, reason = client_context(ca, chain, key, tmp), "handshake"
    elif case == "expired":
        key, chain = ca.issue("frontend", start_s=-7200, lifetime_s=3600)
        context, reason = client_context(ca, chain, key, tmp), "handshake"
    elif case == "no SPIFFE ID":
        key, chain = ca.issue(None)
        context, reason = client_context(ca, chain, key, tmp), "identity"
    else:
        key, chain = ca.issue(None, uri="spiffe://elsewhere.mesh/service/frontend")
        context, reason = client_context(ca, chain, key, tmp), "identity"
    assert await refused_handshake(mesh.inbound, context)
    await eventually(lambda: mesh.refused("inbound", reason) == 1)
    assert mesh.payments_telemetry.requests == []


async def test_the_caller_checks_the_peer_identity(servers, tmp_path, ca) -> None:
    app = await servers.start(simple_app)
    catalog = await start_sidecar(RecordingTelemetry(), app, {}, service="catalog",
                                  identity_files=ca.files(tmp_path, "catalog"))
    frontend = await start_sidecar(
        RecordingTelemetry(), free_port(),
        {"payments": [{"instance": "p-1", "version": "v1",
                       "address": f"127.0.0.1:{catalog.ports['inbound']}"}]},
        identity_files=ca.files(tmp_path, "frontend"))
    try:
        status, headers, body = await request(frontend.ports["outbound"], GET)
        assert status.startswith(b"HTTP/1.1 503"), body
        assert b"is catalog, not payments" in body
        assert frontend.plane.metrics.mtls_refused[("outbound", "identity")] >= 1
    finally:
        await frontend.stop()
        await catalog.stop()


async def test_garbage_on_the_tls_port_is_refused_and_the_listener_goes_on(servers, mesh) -> None:
    await mesh.start(servers)
    for garbage in (b"\x16\x03\x01\x00\x05hello", b"\x16" + os.urandom(300), b"\x16"):
        reader, writer = await asyncio.open_connection("127.0.0.1", mesh.inbound)
        writer.write(garbage)
        writer.write_eof()
        await asyncio.wait_for(reader.read(), 5)  # closed by the sidecar (an alert, or nothing)
        writer.close()
    await eventually(lambda: mesh.refused("inbound", "handshake") == 3)
    status, _, _ = await request(mesh.frontend.ports["outbound"], GET)
    assert status.startswith(b"HTTP/1.1 200")


async def big_app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echoes the request body's length and answers 1 MiB: many TLS records each way."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            received = len(await reader.readexactly(length))
            body = (b"%d " % received).ljust(1 << 20, b"x")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def test_megabytes_cross_the_mtls_hop_whole(servers, tmp_path, ca) -> None:
    """Records are read into the plane's buffer, a few at a time (proxies.dataplane.tls)."""
    app = await servers.start(big_app)
    payments = await start_sidecar(RecordingTelemetry(), app, {}, service="payments",
                                   identity_files=ca.files(tmp_path, "payments"))
    frontend = await start_sidecar(
        RecordingTelemetry(), free_port(),
        {"payments": [{"instance": "p-1", "version": "v1",
                       "address": f"127.0.0.1:{payments.ports['inbound']}"}]},
        identity_files=ca.files(tmp_path, "frontend"))
    try:
        upload = os.urandom(300_000)
        raw = b"POST /up HTTP/1.1\r\nHost: payments\r\ncontent-length: %d\r\n\r\n%s" % (len(upload), upload)
        for _ in range(3):  # keep-alive: the same TLS connection each time
            status, _, body = await request(frontend.ports["outbound"], raw)
            assert status.startswith(b"HTTP/1.1 200")
            assert len(body) == 1 << 20 and body.startswith(b"300000 ")
        assert payments.plane.metrics.mtls_total == 3
    finally:
        await frontend.stop()
        await payments.stop()
