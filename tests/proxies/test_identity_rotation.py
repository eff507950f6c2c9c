"""Certificates from the control channel: asked for with a CSR, renewed at 2/3 of their life
with a new key, rotated every two seconds under load without a failed request."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from cryptography import x509
from websockets.asyncio.server import serve

from proxies.policy.parser import parse_policy
from tests.polling import eventually
from tests.ports import free_port
from tests.proxies.conftest import RecordingTelemetry, read_response, simple_app, start_sidecar
from tests.proxies.mesh_ca import MeshCA


class IssuingMeshui:
    """A stand-in control plane that sends a trust bundle and answers CSRs (meshui's CA's
    protocol, docs/control-channel.md) with certificates of ``lifetime_s``."""

    def __init__(self, ca: MeshCA, lifetime_s: float) -> None:
        self.ca, self.lifetime_s = ca, lifetime_s
        self.port = free_port()
        self.issued: list[tuple[str, str]] = []  # (service, serial)
        self.refuse: set[str] = set()  # services whose CSRs are refused

    async def start(self) -> None:
        async def handler(ws: Any) -> None:
            service = ""
            async for frame in ws:
                message = json.loads(frame)
                if message["type"] == "hello":
                    service = message["service"]
                    await ws.send(json.dumps({"type": "welcome", "proxy_id": message["proxy_id"],
                                              "heartbeat_interval": 5}))
                    await ws.send(json.dumps({"type": "trust_bundle", "version": "v1",
                                              "roots": self.ca.roots_pem}))
                elif message["type"] == "csr":
                    if service in self.refuse:
                        await ws.send(json.dumps({"type": "error", "code": "token_revoked", "field": "csr",
                                                  "id": message["id"], "reason": "the token was revoked"}))
                        continue
                    request = x509.load_pem_x509_csr(message["csr"].encode())
                    now = time.time()
                    chain = self.ca.sign(service, request.public_key(), lifetime_s=self.lifetime_s + 1,
                                         start_s=-1)
                    serial = format(x509.load_pem_x509_certificate(chain.encode()).serial_number, "x")
                    self.issued.append((service, serial))
                    await ws.send(json.dumps({
                        "type": "certificate", "id": message["id"], "chain": chain, "serial": serial,
                        "refresh_at": now + self.lifetime_s * 2 / 3}))

        self.server = await serve(handler, "127.0.0.1", self.port)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/control"

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def issuing() -> Any:
    # Renewed every 2 s; a certificate's times are whole seconds, so shorter ones would leave
    # a loaded machine too little room between renewal and expiry.
    meshui = IssuingMeshui(MeshCA(), lifetime_s=3)
    await meshui.start()
    yield meshui
    await meshui.stop()


async def two_sidecars(servers: Any, meshui: IssuingMeshui) -> tuple[Any, Any]:
    app = await servers.start(simple_app)
    payments = await start_sidecar(RecordingTelemetry(), app, {}, service="payments", control=meshui.url,
                                   policy=parse_policy({"default": {"mtls": {"mode": "STRICT"}}}))
    address = f"127.0.0.1:{payments.ports['inbound']}"
    frontend = await start_sidecar(
        RecordingTelemetry(), free_port(),
        {"payments": [{"instance": "payments-1", "version": "v1", "address": address}]},
        control=meshui.url)
    return frontend, payments


async def test_a_sidecar_gets_its_certificate_over_the_control_channel(servers, issuing) -> None:
    frontend, payments = await two_sidecars(servers, issuing)
    try:
        await eventually(lambda: frontend.identity.ready and payments.identity.ready)
        assert frontend.identity.certificate.spiffe_id == "spiffe://test.mesh/service/frontend"
        assert payments.identity.view()["trust_bundle"] == "v1"
    finally:
        await frontend.stop()
        await payments.stop()


async def test_rotation_every_two_seconds_under_load_fails_no_request(servers, issuing) -> None:
    frontend, payments = await two_sidecars(servers, issuing)
    statuses: list[int] = []
    try:
        await eventually(lambda: frontend.identity.ready and payments.identity.ready)
        outbound = frontend.ports["outbound"]
        stop = asyncio.Event()

        async def client() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", outbound)
            try:
                while not stop.is_set():
                    writer.write(b"GET /pay HTTP/1.1\r\nHost: payments\r\n\r\n")
                    status, _, _ = await asyncio.wait_for(read_response(reader), 5)
                    statuses.append(int(status.split()[1]))
            finally:
                writer.close()

        async def fresh_connections() -> None:
            # New handshakes all along, so each new certificate is used, not only pooled ones.
            while not stop.is_set():
                await asyncio.sleep(0.2)
                for pool in list(frontend.plane.pools.values()):
                    for conn in list(pool.idle):
                        conn.close()

        tasks = [asyncio.create_task(client()) for _ in range(4)] + [asyncio.create_task(fresh_connections())]
        await eventually(lambda: frontend.identity.rotations >= 2 and payments.identity.rotations >= 2,
                         timeout=15)
        stop.set()
        await asyncio.gather(*tasks)
        assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
        # Every request arrived over mTLS (payments is STRICT) with certificates of several serials.
        assert payments.plane.metrics.mtls_total == len(statuses)
        assert len({serial for service, serial in issuing.issued if service == "frontend"}) >= 3
    finally:
        await frontend.stop()
        await payments.stop()


async def test_a_refused_renewal_keeps_the_certificate_until_it_expires(servers, issuing) -> None:
    frontend, payments = await two_sidecars(servers, issuing)
    try:
        await eventually(lambda: frontend.identity.ready)
        issuing.refuse.add("frontend")
        await eventually(lambda: frontend.control.csr_refused is not None, timeout=5)
        assert "token_revoked" in frontend.control.csr_refused["reason"]
        assert frontend.identity.ready  # the one in force stays...
        await eventually(lambda: not frontend.identity.ready, timeout=5)  # ...until it expires
        status, headers, _ = await _get(frontend.ports["outbound"])
        # Outbound is plaintext now, and payments is STRICT: refused, and said so.
        assert status.startswith(b"HTTP/1.1 503") or status.startswith(b"HTTP/1.1 403"), status
    finally:
        await frontend.stop()
        await payments.stop()


async def _get(port: int) -> tuple[bytes, dict, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /pay HTTP/1.1\r\nHost: payments\r\n\r\n")
        return await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
