"""The dashboard over HTTPS and the control channel's refusal of plaintext (issue 11).

The end-to-end tests run meshui in a real uvicorn (a subprocess) with a certificate signed
by a CA made in the test, and talk to it with httpx (trust_env=False, verifying against that
CA) and websockets: the session cookie is Secure and HttpOnly and HSTS is sent; a plaintext
control handshake is refused 403 with a body that says what to change, while one over TLS
gets past that check to the token's. The rest are the decisions and checks on their own.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from meshui.accounts.checks import check_https
from meshui.registry.plaintext import PLAINTEXT_REFUSED, arrived_over_tls, plaintext_refused
from meshui.tls import TlsFilesError, load_tls_files
from proxies.control.client import ControlClient
from proxies.mesh.endpoints import EndpointRegistry
from tests.certificates import Authority, ServerFiles, issue_server, make_authority
from tests.polling import eventually, wait_until
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "tls-user", "a long test password"
# Settings of ours the environment running the suite must not leak into these servers.
OURS = ("MESHUI_DEBUG", "MESHUI_TLS_CERT", "MESHUI_TLS_KEY", "MESHUI_BEHIND_TLS_PROXY",
        "MESHUI_HSTS_SECONDS", "MESHUI_HSTS_INCLUDE_SUBDOMAINS", "MESHUI_SECURE_SSL_REDIRECT",
        "MESHUI_CONTROL_CA", "SSL_CERT_FILE")
PLAINTEXT_LOG = "refused a plaintext (ws://) handshake"


def base_env(database: Path, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OURS}
    return {**env, "DATABASE_URL": f"sqlite:///{database}", "REDIS_URL": redis_url,
            "MESHUI_LOG_LEVEL": "INFO", "MESHUI_CA_DIR": str(database.parent / "ca"),
            "DJANGO_SETTINGS_MODULE": "meshui.settings"}


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database with a user, copied for each server (migrating takes seconds)."""
    database = tmp_path_factory.mktemp("https-db") / "meshui.sqlite3"
    env = {**base_env(database, "redis://127.0.0.1:1/0"), "MESHUI_USER_PASSWORD": PASSWORD}
    for command in (["migrate", "-v0"], ["ensure_user", USER],
                    ["join_token", "--service", "catalog", "--output-dir", str(database.parent)]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True,
                       capture_output=True)
    return database


@pytest.fixture
def token(migrated: Path) -> str:
    """A join token of catalog's, in every server's database (a copy of ``migrated``)."""
    return (migrated.parent / "catalog.token").read_text().strip()


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return make_authority(tmp_path / "ca")


@pytest.fixture
def server_files(authority: Authority, tmp_path: Path) -> ServerFiles:
    return issue_server(authority, tmp_path / "meshui")


class Meshui:
    """meshui in a real uvicorn on a free port; ``tls`` gives uvicorn the certificate."""

    def __init__(self, tmp: Path, database: Path, redis_url: str, env: dict[str, str],
                 tls: ServerFiles | None, ca: Path | None, uvicorn_flags: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.ca = ca
        self.tls = tls
        shutil.copy(database, tmp / "meshui.sqlite3")
        self.env = {**base_env(tmp / "meshui.sqlite3", redis_url), **env}
        self.log_path = tmp / "uvicorn.log"
        flags = ["--ssl-certfile", str(tls.cert), "--ssl-keyfile", str(tls.key)] if tls else []
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "meshui.asgi:application", "--port", str(self.port),
                 "--log-level", "warning", "--timeout-graceful-shutdown", "1", *flags, *uvicorn_flags],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answers, 30, what=f"uvicorn on {self.base} (log: {self.log_path})")

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def control(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/api/v1/control"

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca) if self.ca else None)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, verify=self.context(), trust_env=False, timeout=10)

    def _answers(self) -> bool:
        assert self.process.poll() is None, self.log()
        try:
            with self.http() as client:
                return client.get("/accounts/login/").status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def start(tmp_path: Path, migrated: Path, redis_url: str) -> Iterator[Any]:
    servers: list[Meshui] = []

    def started(env: dict[str, str], tls: ServerFiles | None = None, ca: Path | None = None,
                uvicorn_flags: tuple[str, ...] = ()) -> Meshui:
        directory = tmp_path / f"server-{len(servers)}"
        directory.mkdir()
        servers.append(Meshui(directory, migrated, redis_url, env, tls, ca, uvicorn_flags))
        return servers[-1]

    yield started
    for server in servers:
        server.stop()


def tls_env(files: ServerFiles) -> dict[str, str]:
    return {"MESHUI_TLS_CERT": str(files.cert), "MESHUI_TLS_KEY": str(files.key)}


def cookies(response: httpx.Response) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return jar


async def handshake(url: str, context: ssl.SSLContext | None, token: str = "not-the-token",
                    headers: dict[str, str] | None = None) -> tuple[int, str]:
    """The HTTP status and body of a refused control handshake (101 if it was accepted)."""
    try:
        async with connect(url, ssl=context, proxy=None, open_timeout=10,
                           additional_headers={"Authorization": f"Bearer {token}", **(headers or {})}):
            return 101, ""
    except InvalidStatus as exc:
        return exc.response.status_code, (exc.response.body or b"").decode()


def sidecar(url: str, ca_file: Path | None, token: str) -> ControlClient:
    return ControlClient(
        url, token, {"proxy_id": "catalog-v1-tls", "service": "catalog", "version": "v1",
                     "address": "127.0.0.1:9901"},
        EndpointRegistry(), dict, backoff_min=0.05, backoff_max=0.2,
        ca_file=str(ca_file) if ca_file else None)


# -- over a real uvicorn -----------------------------------------------------------------


def test_the_dashboard_over_https_sends_a_secure_httponly_session_cookie_and_hsts(
    start: Any, server_files: ServerFiles, authority: Authority
) -> None:
    meshui = start(tls_env(server_files), tls=server_files, ca=authority.cert_path)
    with meshui.http() as client:
        page = client.get("/accounts/login/")
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        csrf = cookies(page)["csrftoken"]
        # Secure, but readable by the policy pages' script (static/policy/common.js).
        assert csrf["secure"] and not csrf["httponly"]
        login = client.post("/accounts/login/", data={
            "username": USER, "password": PASSWORD, "csrfmiddlewaretoken": csrf.value,
        }, headers={"Referer": f"{meshui.base}/accounts/login/"})
        assert login.status_code == 302, login.text
        session = cookies(login)["sessionid"]
        assert session["secure"] and session["httponly"]
        assert login.headers["strict-transport-security"] == "max-age=31536000"


async def test_over_wss_a_control_handshake_gets_past_the_plaintext_check(
    start: Any, server_files: ServerFiles, authority: Authority, token: str
) -> None:
    meshui = start(tls_env(server_files), tls=server_files, ca=authority.cert_path)
    # A wrong token: refused by the token check, not the plaintext one.
    status, body = await handshake(meshui.control, meshui.context())
    assert status == 403 and PLAINTEXT_REFUSED not in body
    # The sidecar's own client, with --control-ca, is welcomed.
    client = sidecar(meshui.control, authority.cert_path, token)
    client.start()
    try:
        await eventually(lambda: client.state == "connected", 20, what="a welcome over wss")
    finally:
        await client.stop()
    assert PLAINTEXT_LOG not in meshui.log()


async def test_a_plaintext_control_handshake_is_refused_403_when_tls_is_configured(
    start: Any, server_files: ServerFiles, token: str
) -> None:
    # Settings say HTTPS, but this uvicorn listens in plaintext (started without
    # --ssl-certfile: a plain listener left open, say); DEBUG is off.
    meshui = start(tls_env(server_files))
    status, body = await handshake(meshui.control, None, token=token)
    assert (status, body) == (403, PLAINTEXT_REFUSED)
    wait_until(lambda: PLAINTEXT_LOG in meshui.log(), 10, what="the refusal in meshui's log")
    assert ("meshui serves HTTPS (MESHUI_TLS_CERT), and DEBUG is off; point the sidecar's "
            f"--control at wss://127.0.0.1:{meshui.port}/api/v1/control") in meshui.log()
    # A sidecar shows why in its state, and keeps retrying.
    client = sidecar(meshui.control, None, token)
    client.start()
    try:
        await eventually(lambda: client.state == "refused", 20, what="the sidecar refused")
        assert client.last_error == f"control plane refused us (HTTP 403): {PLAINTEXT_REFUSED}"
    finally:
        await client.stop()


async def test_behind_a_tls_proxy_only_handshakes_it_forwarded_as_https_pass(
    start: Any, token: str
) -> None:
    # --no-proxy-headers: uvicorn leaves the scheme alone, as it does for a proxy whose
    # address is not in --forwarded-allow-ips; meshui reads X-Forwarded-Proto itself.
    meshui = start({"MESHUI_BEHIND_TLS_PROXY": "1"}, uvicorn_flags=("--no-proxy-headers",))
    assert await handshake(meshui.control, None, token=token) == (403, PLAINTEXT_REFUSED)
    wait_until(lambda: "meshui is behind a TLS proxy (MESHUI_BEHIND_TLS_PROXY) and the handshake "
               "had no X-Forwarded-Proto: https" in meshui.log(), 10, what="the refusal logged")
    status, body = await handshake(meshui.control, None, token=token,
                                   headers={"X-Forwarded-Proto": "https"})
    assert status == 101, body
    with meshui.http() as client:
        page = client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert page.headers["strict-transport-security"] == "max-age=31536000"
    assert cookies(page)["csrftoken"]["secure"]


def test_a_key_that_is_not_the_certificates_stops_the_start_naming_it(
    migrated: Path, redis_url: str, authority: Authority, tmp_path: Path
) -> None:
    one = issue_server(authority, tmp_path / "one", name="one")
    other = issue_server(authority, tmp_path / "other", name="other")
    env = {**base_env(migrated, redis_url), "MESHUI_TLS_CERT": str(one.cert),
           "MESHUI_TLS_KEY": str(other.key)}
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert (f"MESHUI_TLS_KEY: {other.key} is not the private key of the certificate in "
            f"MESHUI_TLS_CERT ({one.cert}, CN=one)") in done.stderr


# -- the decisions and checks on their own -----------------------------------------------


def test_the_certificate_files_are_checked_with_a_message_naming_the_variable(
    authority: Authority, server_files: ServerFiles, tmp_path: Path
) -> None:
    assert load_tls_files("", "") is None
    files = load_tls_files(str(server_files.cert), str(server_files.key))
    assert files is not None and files.subject == "CN=meshui"

    def problem(cert: Path | str, key: Path | str) -> str:
        with pytest.raises(TlsFilesError) as caught:
            load_tls_files(str(cert), str(key))
        return str(caught.value)

    assert problem(server_files.cert, "").startswith("MESHUI_TLS_KEY is not set")
    assert problem("", server_files.key).startswith("MESHUI_TLS_CERT is not set")
    assert problem(tmp_path / "nope.pem", server_files.key) == (
        f"MESHUI_TLS_CERT: {tmp_path / 'nope.pem'} does not exist")
    assert problem(server_files.key, server_files.key).startswith(
        f"MESHUI_TLS_CERT: {server_files.key} holds no PEM certificate")
    assert problem(server_files.cert, server_files.cert).startswith(
        f"MESHUI_TLS_KEY: {server_files.cert} holds no PEM private key")
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key(server_files.key.read_bytes(), password=None)
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    assert problem(server_files.cert, encrypted).startswith(f"MESHUI_TLS_KEY: {encrypted} is encrypted")


def scope(scheme: str, **headers: str) -> dict[str, Any]:
    return {"scheme": scheme, "headers": [(k.replace("_", "-").encode(), v.encode())
                                          for k, v in headers.items()]}


@pytest.mark.parametrize(("handshake_scope", "debug", "https", "proxy", "refused"), [
    (scope("ws"), False, True, False, True),  # production, HTTPS, plaintext
    (scope("wss"), False, True, False, False),  # over TLS
    (scope("ws"), True, True, False, False),  # DEBUG: a developer's box
    (scope("ws"), False, False, False, False),  # no HTTPS at all (W003 warns)
    (scope("ws", x_forwarded_proto="https"), False, True, False, True),  # header not trusted
    (scope("ws", x_forwarded_proto="https"), False, True, True, False),  # behind the TLS proxy
    (scope("ws", x_forwarded_proto="http"), False, True, True, True),
    (scope("ws", x_forwarded_proto="https, http"), False, True, True, False),  # left-most counts
    (scope("ws", x_forwarded_proto="http, https"), False, True, True, True),
])
def test_a_plaintext_handshake_is_refused_only_in_production_with_https(
    handshake_scope: dict[str, Any], debug: bool, https: bool, proxy: bool, refused: bool
) -> None:
    assert plaintext_refused(handshake_scope, debug=debug, https=https,
                             behind_tls_proxy=proxy) is refused


def test_the_scope_scheme_uvicorn_set_from_a_trusted_proxy_counts_as_tls() -> None:
    assert arrived_over_tls(scope("wss"), behind_tls_proxy=False)


def test_plain_http_in_production_warns_w003(settings: Any) -> None:
    settings.DEBUG, settings.MESHUI_HTTPS = False, False
    (warning,) = check_https()
    assert warning.id == "meshui.W003" and "plaintext" in warning.msg
    settings.MESHUI_HTTPS = True
    assert check_https() == []
    settings.DEBUG, settings.MESHUI_HTTPS = True, False
    assert check_https() == []


def test_the_demo_serves_https_and_points_its_sidecars_at_wss_when_a_certificate_is_set(
    server_files: ServerFiles, authority: Authority, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshui.demo.mesh import Mesh, MeshConfig

    for name in OURS:
        monkeypatch.delenv(name, raising=False)
    plain = MeshConfig.from_env()
    assert plain.dashboard_url.startswith("http://") and plain.control_url.startswith("ws://")
    assert Mesh(plain)._uvicorn_tls() == [] and Mesh(plain).child_env()["MESHUI_TLS_CERT"] == ""

    monkeypatch.setenv("MESHUI_TLS_CERT", str(server_files.cert))
    monkeypatch.setenv("MESHUI_TLS_KEY", str(server_files.key))
    config = MeshConfig.from_env()
    mesh = Mesh(config)
    assert config.dashboard_url == f"https://127.0.0.1:{config.meshui_port}/"
    assert config.control_url == f"wss://127.0.0.1:{config.meshui_port}/api/v1/control"
    assert mesh._uvicorn_tls() == ["--ssl-certfile", str(server_files.cert),
                                   "--ssl-keyfile", str(server_files.key)]
    assert mesh.child_env()["MESHUI_TLS_KEY"] == str(server_files.key)
    assert mesh._ca() == str(server_files.cert)  # a self-signed certificate is its own CA
    monkeypatch.setenv("MESHUI_CONTROL_CA", str(authority.cert_path))
    assert Mesh(MeshConfig.from_env())._ca() == str(authority.cert_path)


def test_the_demo_stops_on_a_certificate_without_its_key(
    server_files: ServerFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshui.demo.mesh import MeshConfig
    from meshui.env import EnvError

    monkeypatch.setenv("MESHUI_TLS_CERT", str(server_files.cert))
    monkeypatch.delenv("MESHUI_TLS_KEY", raising=False)
    with pytest.raises(EnvError, match="MESHUI_TLS_KEY is not set"):
        MeshConfig.from_env()
