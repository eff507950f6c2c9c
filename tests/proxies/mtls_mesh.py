"""Two real sidecars with mTLS identities on loopback (payments behind its sidecar, called
through frontend's), and TLS clients with whatever certificate a test wants to present."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path
from typing import Any

from proxies.identity import keys
from tests.ports import free_port
from tests.proxies.conftest import RecordingTelemetry, read_response, simple_app, start_sidecar
from tests.proxies.mesh_ca import MeshCA


async def request(port: int, raw: bytes, context: ssl.SSLContext | None = None) -> tuple[bytes, dict, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        writer.write(raw)
        return await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()


class Mesh:
    """payments (an app behind its sidecar) called through frontend's sidecar."""

    def __init__(self, tmp: Path, ca: MeshCA) -> None:
        self.tmp, self.ca = tmp, ca
        self.sidecars: list[Any] = []

    async def start(self, servers: Any, payments_policy: Any = None, frontend_files: Any = None,
                    payments_files: Any = None) -> None:
        app = await servers.start(simple_app)
        self.payments_telemetry = RecordingTelemetry()
        self.payments = await start_sidecar(
            self.payments_telemetry, app, {}, service="payments",
            identity_files=payments_files or self.ca.files(self.tmp, "payments"), policy=payments_policy)
        self.sidecars.append(self.payments)
        self.frontend_telemetry = RecordingTelemetry()
        self.frontend = await start_sidecar(
            self.frontend_telemetry, free_port(), self.endpoints(),
            identity_files=frontend_files or self.ca.files(self.tmp, "frontend"))
        self.sidecars.append(self.frontend)

    def endpoints(self) -> dict[str, Any]:
        address = f"127.0.0.1:{self.payments.ports['inbound']}"
        return {"payments": [{"instance": "payments-1", "version": "v1", "address": address}]}

    @property
    def inbound(self) -> int:
        return self.payments.ports["inbound"]

    def refused(self, direction: str, reason: str, sidecar: Any = None) -> int:
        return (sidecar or self.payments).plane.metrics.mtls_refused[(direction, reason)]

    async def stop(self) -> None:
        for sidecar in self.sidecars:
            await sidecar.stop()


def client_context(
    ca: MeshCA, chain: str | None = None, key: Any = None, tmp: Path | None = None
) -> ssl.SSLContext:
    """A TLS 1.3 client trusting ``ca``, presenting ``chain`` (none when None)."""
    context = ssl.create_default_context(cadata=ca.roots_pem)
    context.check_hostname = False
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    if chain is not None:
        assert tmp is not None
        path = tmp / f"client-{os.urandom(4).hex()}.pem"
        path.write_bytes(chain.encode() + keys.key_pem(key))
        context.load_cert_chain(str(path))
    return context


