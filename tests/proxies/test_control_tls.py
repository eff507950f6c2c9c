"""The control channel over wss://: the sidecar verifies meshui's certificate.

A small real websockets server with TLS (a certificate signed by a CA made in the test)
stands in for meshui; the sidecar's ``ControlClient`` connects to it with ``--control-ca``
(``ca_file``). A wrong CA or a certificate for another host leaves the client ``untrusted``
with a last_error that says what was checked and why it failed, and it keeps retrying: the
right CA put in the file is picked up on a later attempt.
"""

from __future__ import annotations

import json
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from proxies.config import parse_config
from proxies.control.client import ControlClient
from proxies.mesh.endpoints import EndpointRegistry
from tests.certificates import Authority, ServerFiles, issue_server, make_authority
from tests.proxies.conftest import until

HELLO = {"proxy_id": "frontend-v1-tls", "service": "frontend", "version": "v1",
         "address": "127.0.0.1:15001"}


class TlsMeshui:
    """Welcomes every sidecar over TLS and counts the hellos it got."""

    def __init__(self, files: ServerFiles) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(files.cert, files.key)
        self.hellos = 0
        self.server: Server | None = None

    async def handler(self, ws: ServerConnection) -> None:
        async for frame in ws:
            message = json.loads(frame)
            if message["type"] == "hello":
                self.hellos += 1
                await ws.send(json.dumps({"type": "welcome", "proxy_id": message["proxy_id"],
                                          "heartbeat_interval": 5}))

    async def start(self) -> int:
        self.server = await serve(self.handler, "127.0.0.1", 0, ssl=self.context)
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return make_authority(tmp_path / "ca")


@pytest.fixture
async def tls_meshui(authority: Authority, tmp_path: Path) -> AsyncIterator[tuple[TlsMeshui, int]]:
    server = TlsMeshui(issue_server(authority, tmp_path / "server"))
    port = await server.start()
    yield server, port
    assert server.server is not None
    server.server.close()
    await server.server.wait_closed()


def client(url: str, ca_file: Path | None) -> ControlClient:
    return ControlClient(url, "token", HELLO, EndpointRegistry(), dict, backoff_min=0.01,
                         backoff_max=0.05, ca_file=str(ca_file) if ca_file else None)


async def test_with_control_ca_it_connects_over_wss(
    tls_meshui: tuple[TlsMeshui, int], authority: Authority
) -> None:
    server, port = tls_meshui
    sidecar = client(f"wss://127.0.0.1:{port}/api/v1/control", authority.cert_path)
    sidecar.start()
    try:
        await until(lambda: sidecar.state == "connected", 10)
        assert server.hellos == 1 and sidecar.last_error is None
    finally:
        await sidecar.stop()


async def test_a_certificate_from_another_ca_is_untrusted_and_retried_until_the_right_ca_is_given(
    tls_meshui: tuple[TlsMeshui, int], authority: Authority, tmp_path: Path
) -> None:
    server, port = tls_meshui
    stranger = make_authority(tmp_path / "other", name="some other CA")
    ca_file = tmp_path / "control-ca.pem"
    shutil.copy(stranger.cert_path, ca_file)
    sidecar = client(f"wss://127.0.0.1:{port}/api/v1/control", ca_file)
    sidecar.start()
    try:
        await until(lambda: sidecar.state == "untrusted", 10)
        error = sidecar.view()["last_error"]
        assert error == (f"meshui's TLS certificate did not verify against the CA bundle "
                         f"{ca_file} (--control-ca): unable to get local issuer certificate")
        assert server.hellos == 0
        # Retried with backoff like any failure, reading the CA file again each time.
        shutil.copy(authority.cert_path, ca_file)
        await until(lambda: sidecar.state == "connected", 10)
        assert server.hellos == 1
    finally:
        await sidecar.stop()


async def test_without_control_ca_a_private_ca_is_untrusted_by_the_system_store(
    tls_meshui: tuple[TlsMeshui, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    _, port = tls_meshui
    sidecar = client(f"wss://127.0.0.1:{port}/api/v1/control", None)
    sidecar.start()
    try:
        await until(lambda: sidecar.state == "untrusted", 10)
        assert "the system's trust store (a private CA needs --control-ca FILE)" in (
            sidecar.last_error or "")
    finally:
        await sidecar.stop()


async def test_a_certificate_for_another_host_is_untrusted(
    authority: Authority, tmp_path: Path
) -> None:
    server = TlsMeshui(issue_server(authority, tmp_path / "elsewhere", hosts=("mesh.example.com",)))
    port = await server.start()
    sidecar = client(f"wss://127.0.0.1:{port}/api/v1/control", authority.cert_path)
    sidecar.start()
    try:
        await until(lambda: sidecar.state == "untrusted", 10)
        assert "IP address mismatch" in (sidecar.last_error or ""), sidecar.last_error
    finally:
        await sidecar.stop()
        assert server.server is not None
        server.server.close()
        await server.server.wait_closed()


BASE = ["--service", "frontend", "--version", "v1", "--app", "127.0.0.1:8080", "--token", "t"]


def test_control_ca_comes_from_the_flag_or_meshui_control_ca(authority: Authority) -> None:
    url = "wss://mesh.example.com/api/v1/control"
    config = parse_config([*BASE, "--control", url, "--control-ca", str(authority.cert_path)], env={})
    assert config.control_ca == str(authority.cert_path)
    config = parse_config([*BASE, "--control", url], env={"MESHUI_CONTROL_CA": str(authority.cert_path)})
    assert config.control_ca == str(authority.cert_path)
    assert parse_config([*BASE, "--control", url], env={}).control_ca is None


@pytest.mark.parametrize(("control", "ca", "says"), [
    ("ws://127.0.0.1:8000/api/v1/control", "CA", "--control-ca verifies meshui's certificate: it "
     "needs a wss:// --control URL"),
    ("http://127.0.0.1:8000/api/v1/control", None, "--control must be a ws:// or wss:// URL"),
    ("wss://127.0.0.1:8000/api/v1/control", "missing.pem", "no such file"),
    ("wss://127.0.0.1:8000/api/v1/control", "garbage", "not a PEM CA bundle"),
])
def test_a_bad_control_url_or_ca_file_stops_the_start_naming_it(
    control: str, ca: str | None, says: str, authority: Authority, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    files = {"CA": str(authority.cert_path), "missing.pem": str(tmp_path / "missing.pem"),
             "garbage": str(garbage)}
    argv = [*BASE, "--control", control] + (["--control-ca", files[ca]] if ca else [])
    with pytest.raises(SystemExit):
        parse_config(argv, env={})
    assert says in capsys.readouterr().err
