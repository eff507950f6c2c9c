"""Zero trust through the demo's real processes: meshui's CA, join tokens, mTLS between
sidecars, rotation under load, STRICT and PERMISSIVE, and a revoked token.

Certificates live 6 s here (renewed every 4 s), so rotation happens many times in a test.
The tests run in order on one mesh: the last one revokes checkout's join token.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from meshui.demo.mesh import PROJECT_ROOT, Mesh
from meshui.demo.topology import Instance
from proxies.identity import keys
from tests.e2e.meshes import small_mesh
from tests.polling import wait_until
from tests.ports import free_port

INSTANCES = (Instance("frontend", "v1"), Instance("catalog", "v1"), Instance("inventory", "v1"),
             Instance("checkout", "v1"), Instance("payments", "v1", failure_rate=0.0))
LIFETIME_S = 6
TRUST_DOMAIN = "meshui.local"


@pytest.fixture(scope="module")
def mesh(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    redis_url = f"{redis_server_url}/10"
    redis.Redis.from_url(redis_url).flushdb()
    with small_mesh(tmp_path_factory.mktemp("mtls"), "mtls", INSTANCES, redis_url=redis_url,
                    extra_env=(("MESHUI_CERT_LIFETIME_S", str(LIFETIME_S)),)) as mesh:
        yield mesh


def admin(mesh: Mesh, index: int, path: str) -> Any:
    url = f"http://{mesh.config.host}:{mesh.config.ports(index).admin}{path}"
    response = httpx.get(url, timeout=5, trust_env=False)
    return response.json() if path != "/metrics" else response.text


def identities(mesh: Mesh) -> list[dict[str, Any]]:
    return [admin(mesh, i, "/identity") for i in range(len(INSTANCES))]


def api(mesh: Mesh, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or mesh.demo_token()}"}
    return httpx.request(method, f"{mesh.config.dashboard_url}api/v1/{path}", headers=headers,
                         timeout=10, trust_env=False, **kwargs)


def edge(mesh: Mesh, source: str, target: str) -> dict[str, Any] | None:
    graph = api(mesh, "GET", "graph", params={"window": 300}).json()
    return next((e for e in graph["edges"] if (e["source"], e["target"]) == (source, target)), None)


def refused(mesh: Mesh, index: int, reason: str) -> int:
    text = admin(mesh, index, "/metrics")
    series = f'meshui_proxy_mtls_refused_total{{direction="inbound",reason="{reason}"}}'
    found = re.search(re.escape(series) + r" (\d+)", text)
    assert found, text
    return int(found[1])


class Shoppers:
    """Checkouts through the frontend (frontend -> catalog, checkout -> payments) until stopped;
    every status kept."""

    def __init__(self, mesh: Mesh, threads: int = 3) -> None:
        self.url = mesh.config.inbound_url("frontend") + "/checkout"
        self.statuses: list[int] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=10, trust_env=False, headers={"host": "frontend"}) as client:
            while not self.stop.is_set():
                try:
                    self.statuses.append(client.post(self.url, content=b"{}").status_code)
                except httpx.HTTPError as exc:
                    self.statuses.append(-1)
                    print("shopper:", exc)
                self.stop.wait(0.02)

    def __enter__(self) -> Shoppers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)


def test_every_sidecar_gets_its_identity_from_meshui_and_the_api_lists_them(mesh: Mesh) -> None:
    wait_until(lambda: all(i["mtls"] for i in identities(mesh)), 20, what="every sidecar's certificate")
    for instance, identity in zip(INSTANCES, identities(mesh), strict=True):
        assert identity["source"] == "control"
        assert identity["certificate"]["spiffe_id"] == f"spiffe://{TRUST_DOMAIN}/service/{instance.service}"
    listing = api(mesh, "GET", "certificates").json()
    assert sorted(c["proxy_id"] for c in listing["certificates"]) == sorted(
        f"{i.service}-{i.version}-{n}" for n, i in enumerate(INSTANCES))
    bundle = httpx.get(f"{mesh.config.dashboard_url}api/v1/mesh/trust-bundle", timeout=5, trust_env=False)
    assert bundle.text.startswith("-----BEGIN CERTIFICATE-----")


def test_rotation_under_load_fails_no_request_and_every_hop_is_mtls(mesh: Mesh) -> None:
    before = [i["rotations"] for i in identities(mesh)]
    with Shoppers(mesh) as shoppers:
        # Two renewals of every sidecar (every 4 s) while the checkouts go on.
        def rotated_twice() -> bool:
            return all(i["rotations"] >= b + 2 for i, b in zip(identities(mesh), before, strict=True))
        wait_until(rotated_twice, 30, what="two rotations of every certificate")
    assert len(shoppers.statuses) > 50
    assert set(shoppers.statuses) == {200}, {s: shoppers.statuses.count(s) for s in set(shoppers.statuses)}
    # The graph: sidecar hops went over mTLS (the padlock's share), the outside caller did not.
    def shares() -> tuple[float, float, float] | None:
        pay, cat, entry = (edge(mesh, "checkout", "payments"), edge(mesh, "frontend", "catalog"),
                           edge(mesh, "unknown", "frontend"))
        if not (pay and cat and entry) or not pay["requests"]:
            return None
        return (pay["events"]["mtls"] / pay["requests"], cat["events"]["mtls"] / cat["requests"],
                entry["events"]["mtls"])
    wait_until(lambda: (s := shares()) is not None and s[0] == 1.0 and s[1] == 1.0 and s[2] == 0,
               20, what="mTLS on every sidecar hop in the graph")


def ca_files(mesh: Mesh) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """meshui's own root (its files in MESHUI_CA_DIR), to sign the odd certificates below."""
    directory = Path(mesh.child_env()["MESHUI_CA_DIR"])
    cert = x509.load_pem_x509_certificate((directory / "root.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / "root.key").read_bytes(), None)
    return cert, key  # type: ignore[return-value]


def client_context(
    tmp: Path, ca_cert: x509.Certificate, leaf: tuple[Any, x509.Certificate] | None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca_cert.public_bytes(serialization.Encoding.PEM).decode())
    context.check_hostname = False
    if leaf is not None:
        key, cert = leaf
        path = tmp / f"leaf-{time.monotonic_ns()}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + keys.key_pem(key))
        context.load_cert_chain(str(path))
    return context


def leaf(
    issuer: x509.Certificate, signer: Any, uri: str, *, expired: bool = False
) -> tuple[Any, x509.Certificate]:
    key = keys.new_key()
    now = dt.datetime.now(dt.UTC) - (dt.timedelta(hours=2) if expired else dt.timedelta())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(issuer.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=True)
            .sign(signer, hashes.SHA256()))
    return key, cert


def test_strict_refuses_plaintext_and_every_bad_certificate_and_counts_each(
    mesh: Mesh, tmp_path: Path
) -> None:
    parent = api(mesh, "GET", "policy").json()["revision"]
    response = api(mesh, "PATCH", "policy/services/catalog", json={
        "patch": {"mtls": {"mode": "STRICT"}}, "parent": parent, "source": "cli"})
    assert response.status_code == 201, response.text
    revision = response.json()["revision"]
    wait_until(lambda: admin(mesh, 1, "/config")["policy"]["revision"] == revision, 15,
               what="STRICT in force")
    inbound = mesh.config.inbound_url("catalog")
    plain = httpx.get(inbound + "/items", headers={"host": "catalog"}, timeout=5, trust_env=False)
    assert plain.status_code == 403 and plain.headers["x-meshui-error"] == "mtls-required"
    assert refused(mesh, 1, "plaintext") == 1
    # Sidecars still get through.
    front = httpx.get(mesh.config.inbound_url("frontend") + "/", headers={"host": "frontend"}, timeout=10,
                      trust_env=False)
    assert front.status_code == 200
    root, root_key = ca_files(mesh)
    other = ec.generate_private_key(ec.SECP256R1())
    other_root = (x509.CertificateBuilder().subject_name(root.subject).issuer_name(root.subject)
                  .public_key(other.public_key()).serial_number(x509.random_serial_number())
                  .not_valid_before(root.not_valid_before_utc).not_valid_after(root.not_valid_after_utc)
                  .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                  .sign(other, hashes.SHA256()))
    me = f"spiffe://{TRUST_DOMAIN}/service/frontend"
    cases = {
        "no certificate": (None, "handshake"),
        "another CA": (leaf(other_root, other, me), "handshake"),
        "expired": (leaf(root, root_key, me, expired=True), "handshake"),
        "another trust domain": (leaf(root, root_key, "spiffe://elsewhere/service/frontend"), "identity"),
    }
    host, port = inbound.removeprefix("http://").split(":")
    for name, (presented, reason) in cases.items():
        before = refused(mesh, 1, reason)
        context = client_context(tmp_path, root, presented)
        with pytest.raises(OSError):  # ssl.SSLError and ConnectionError are OSErrors
            with socket.create_connection((host, int(port)), timeout=5) as raw, \
                    context.wrap_socket(raw) as tls:
                tls.sendall(b"GET /items HTTP/1.1\r\nHost: catalog\r\n\r\n")
                if not tls.recv(1024):  # TLS 1.3: a refused client certificate shows here
                    raise ConnectionError("closed")
        wait_until(lambda reason=reason, before=before: refused(mesh, 1, reason) == before + 1, 5,
                   what=f"{name} counted as {reason}")


def test_a_payments_token_cannot_get_a_catalog_identity(mesh: Mesh, tmp_path: Path) -> None:
    admin_port = free_port()
    sidecar = subprocess.Popen([
        sys.executable, "-m", "proxies", "--service", "catalog", "--version", "v9", "--app", "127.0.0.1:9",
        "--inbound", f"127.0.0.1:{free_port()}", "--outbound", f"127.0.0.1:{free_port()}",
        "--admin", f"127.0.0.1:{admin_port}",
        "--control", f"ws://{mesh.config.host}:{mesh.config.meshui_port}/api/v1/control"],
        env={**mesh.child_env(), "MESHUI_JOIN_TOKEN": mesh.join_token("payments")}, cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def control() -> dict[str, Any] | None:
            try:
                url = f"http://127.0.0.1:{admin_port}/config"
                return httpx.get(url, timeout=2, trust_env=False).json()["control"]
            except httpx.HTTPError:
                return None
        wait_until(lambda: (c := control()) is not None and c["state"] != "connecting", 15, what="an answer")
        identity = httpx.get(f"http://127.0.0.1:{admin_port}/identity", timeout=2, trust_env=False).json()
        assert identity["mtls"] is False
        assert control()["state"] != "connected"  # type: ignore[index]
        issued = api(mesh, "GET", "certificates").json()["certificates"]
        assert not [c for c in issued if c["proxy_id"].startswith("catalog-v9")]
    finally:
        sidecar.terminate()
        sidecar.wait(10)


def admin_token(mesh: Mesh) -> str:
    manage = [sys.executable, str(PROJECT_ROOT / "manage.py")]
    env = {**mesh.child_env(), "MESHUI_USER_PASSWORD": "an-e2e-admin-password"}
    mesh.supervisor.run_to_completion("e2e-admin", [*manage, "ensure_user", "e2e-admin", "--superuser"], env)
    path = mesh.config.data_dir / "e2e-admin-token"
    mesh.supervisor.run_to_completion("e2e-admin-token", [
        *manage, "issue_token", "e2e-admin", "--name", "e2e", "--output", str(path)], env)
    return path.read_text().strip()


def test_a_revoked_token_disconnects_its_sidecar_at_once_and_it_is_never_renewed(mesh: Mesh) -> None:
    token = admin_token(mesh)
    listing = api(mesh, "GET", "join-tokens", token).json()["join_tokens"]
    (checkout,) = [t for t in listing if t["service"] == "checkout" and t["state"] == "active"]
    assert api(mesh, "DELETE", f"join-tokens/{checkout['id']}", token).status_code == 200
    wait_until(lambda: admin(mesh, 3, "/config")["control"]["state"] == "refused", 10,
               what="checkout's sidecar refused at its reconnect")
    # Out of the mesh: its instance left the other sidecars' endpoints.
    wait_until(lambda: not admin(mesh, 0, "/endpoints")["destinations"].get("checkout", {}).get("endpoints"),
               10, what="checkout gone from frontend's endpoints")
    # Its certificate is not renewed: it expires within the lifetime, and then its calls to
    # payments (PERMISSIVE) go in plaintext, which the graph shows as a share below 100 %.
    wait_until(lambda: not admin(mesh, 3, "/identity")["mtls"], LIFETIME_S + 5, what="its certificate gone")
    url = mesh.config.inbound_url("checkout") + "/orders"
    with httpx.Client(timeout=10, trust_env=False, headers={"host": "checkout"}) as client:
        statuses = [client.post(url, content=b"{}").status_code for _ in range(20)]
    assert set(statuses) == {200}
    def share() -> float:
        found = edge(mesh, "checkout", "payments")
        return found["events"]["mtls"] / found["requests"] if found and found["requests"] else 1.0
    wait_until(lambda: share() < 1.0, 15, what="a plaintext share on checkout -> payments")
