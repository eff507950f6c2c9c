"""Benchmark: mutual TLS on the mesh hop, ours against Envoy with the same certificates, in the same run.

    .venv/bin/python bench/sidecar_mtls.py [--policy] [--rounds 3] [--seconds 4]

A two-proxy path, as between two services of a mesh: wrk -> proxy A (a plain HTTP
listener, the caller's sidecar) -> proxy B over the mesh hop -> upstream. Four such paths
and a direct one, measured in interleaved rounds (the order flips every round):

- ``ours-plain``: sidecar A (service ``client``, outbound listener, a static endpoints file
  pointing ``upstream`` at B's inbound port) -> sidecar B (service ``upstream``, ``--app``
  the upstream), plaintext between them;
- ``ours-mtls``: the same with ``--cert/--key/--trust-bundle`` on both: TLS 1.3 between
  them, A checks that B's SPIFFE ID is ``upstream``'s, B requires A's certificate;
- ``envoy-plain`` and ``envoy-mtls``: Envoy A (HTTP listener, a cluster to Envoy B) ->
  Envoy B (a listener routing to the upstream); with mTLS, A's cluster has an
  UpstreamTlsContext (TLS 1.3 only, the client certificate, the bundle, B's SPIFFE ID as
  the URI SAN it must have) and B's filter chain a DownstreamTlsContext (client
  certificate required, the same bundle, TLS 1.3 only), with the same certificates as ours.

One CA (ECDSA P-256) issues the leaves (P-256, URI SAN ``spiffe://bench.mesh/service/<name>``).
Our sidecars keep telemetry on (OTLP to a local sink, trace sample 0.01), as in
bench/sidecar_hop.py; Envoys run ``--concurrency 1``. Both proxies of a path are pinned to the
proxy core, wrk, the upstreams and the sink to the other. CPU per request is summed over both
proxies (/proc/<pid>/stat); added p50 is against direct, at concurrency 1; rps at 50. The
connections between A and B are kept alive (pools as today): the handshakes are paid in the
warm-up, and the steady state costs TLS records.

``--policy``: the full-policy variant (bench/sidecar_policy.py's policy, on A: a 90/10 split
over v1/v2, peak-EWMA or least-request, retries, outlier detection), each version behind its
own B, so a path has three proxies.

New TLS connections per second (not with ``--policy``): ``openssl s_time -new`` clients on the
load core, each with the client certificate, open full mutual-TLS handshakes to our B's inbound
port and to Envoy B's TLS listener in turn, for a few rounds; it counts connections per second
and the server's CPU per handshake, and the busy share of both cores says which side was the
bottleneck.

Writes ``## Sidecar hop with mTLS`` (or ``## Sidecar with full policy and mTLS``) in
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from results import paired_ratios  # type: ignore[import-not-found]
from sidecar_hop import (  # type: ignore[import-not-found]
    HOP_CLUSTER,
    LOAD_CPU,
    OTLP_SINK,
    PROXY_CPU,
    PY,
    ROOT,
    TICKS,
    UPSTREAM,
    Target,
    cpu_ticks,
    envoy_config,
    free_port,
    interleaved,
    report,
    rss_mb,
    spawn,
    start_envoy,
    stop_all,
    wait_port,
)
from sidecar_policy import ENVOY_CLUSTER, ENVOY_ROUTE, POLICY  # type: ignore[import-not-found]

TRUST_DOMAIN = "bench.mesh"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


# certificates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """The PEM files of one service's identity: ``--cert``, ``--key``, ``--trust-bundle``."""

    cert: Path
    key: Path
    bundle: Path
    spiffe_id: str

    def flags(self) -> list[str]:
        return ["--cert", str(self.cert), "--key", str(self.key), "--trust-bundle", str(self.bundle)]


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_identities(directory: Path, services: list[str]) -> dict[str, Identity]:
    """A root CA and a leaf per service, all ECDSA P-256, as meshui's CA issues them
    (the idea of tests/proxies/mesh_ca.py; a benchmark does not import tests)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench root")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    bundle = directory / "bundle.pem"
    bundle.write_bytes(_pem(ca))
    identities = {}
    for service in services:
        key = ec.generate_private_key(ec.SECP256R1())
        spiffe_id = f"spiffe://{TRUST_DOMAIN}/service/{service}"
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([])).issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]),
                           critical=True)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        cert, key_file = directory / f"{service}.crt", directory / f"{service}.key"
        cert.write_bytes(_pem(leaf))
        key_file.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        key_file.chmod(0o600)
        identities[service] = Identity(cert, key_file, bundle, spiffe_id)
    return identities


# Envoy's TLS: the same certificates, TLS 1.3 only, as our sidecars' contexts ------------------

TLS_PARAMS = "tls_params: {tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}"
UPSTREAM_TLS = """
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: upstream
        common_tls_context:
          {params}
          tls_certificates:
          - {{certificate_chain: {{filename: "{cert}"}}, private_key: {{filename: "{key}"}}}}
          validation_context:
            trusted_ca: {{filename: "{bundle}"}}
            match_typed_subject_alt_names:
            - {{san_type: URI, matcher: {{exact: "{peer}"}}}}"""
# B takes any mesh identity of the trust domain, as our inbound listener does.
DOWNSTREAM_TLS = """
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            {params}
            tls_certificates:
            - {{certificate_chain: {{filename: "{cert}"}}, private_key: {{filename: "{key}"}}}}
            validation_context:
              trusted_ca: {{filename: "{bundle}"}}
              match_typed_subject_alt_names:
              - {{san_type: URI, matcher: {{prefix: "spiffe://{domain}/"}}}}"""


def upstream_tls(me: Identity, peer: Identity) -> str:
    return UPSTREAM_TLS.format(params=TLS_PARAMS, cert=me.cert, key=me.key, bundle=me.bundle,
                               peer=peer.spiffe_id)


def downstream_tls(me: Identity) -> str:
    return DOWNSTREAM_TLS.format(params=TLS_PARAMS, cert=me.cert, key=me.key, bundle=me.bundle,
                                 domain=TRUST_DOMAIN)


# the paths -------------------------------------------------------------------------------------


@dataclass
class Path2:
    """A running path: the port wrk sends to, its proxies (A first), B's mesh-facing ports."""

    port: int
    proxies: list[subprocess.Popen]
    servers: list[int]
    admins: list[int]

    def target(self) -> Target:
        return self.port, self.proxies

    def ports(self) -> list[int]:
        return [self.port, *self.servers]


def our_sidecar(tmp: Path, name: str, service: str, version: str, app: int, endpoints: Path,
                *flags: str, tree: Path = ROOT) -> tuple[int, int, int, subprocess.Popen]:
    """(inbound, outbound, admin, process) of one of our sidecars (``tree``'s) on the proxy core."""
    inbound, outbound, admin = free_port(), free_port(), free_port()
    proc = spawn(
        PROXY_CPU, PY, "-m", "proxies", "--service", service, "--version", version,
        "--app", f"127.0.0.1:{app}", "--inbound", f"127.0.0.1:{inbound}",
        "--outbound", f"127.0.0.1:{outbound}", "--admin", f"127.0.0.1:{admin}",
        "--endpoints", str(endpoints), *flags, "--log-level", "WARNING", log=tmp / f"{name}.log",
        cwd=tree,
    )  # fmt: skip
    return inbound, outbound, admin, proc


def ours(tmp: Path, name: str, apps: dict[str, int], ids: dict[str, Identity] | None, sink: int,
         policy: Path | None, tree: Path = ROOT) -> Path2:
    """Sidecar A (``client``) -> one sidecar B (``upstream``) per version in ``apps``."""
    telemetry = ["--otlp", f"http://127.0.0.1:{sink}", "--trace-sample", "0.01"]
    none = tmp / "no-endpoints.json"
    none.write_text("{}")
    backs, servers, admins, members = [], [], [], []
    for version, app in apps.items():
        inbound, _, admin, proc = our_sidecar(
            tmp, f"{name}-b-{version}", "upstream", version, app, none, *telemetry,
            *(ids["upstream"].flags() if ids else []), tree=tree)
        backs.append(proc)
        servers.append(inbound)
        admins.append(admin)
        members.append({"instance": f"b-{version}", "version": version, "address": f"127.0.0.1:{inbound}"})
    endpoints = tmp / f"{name}-endpoints.json"
    endpoints.write_text(json.dumps({"upstream": members}))
    _, outbound, admin, front = our_sidecar(
        tmp, f"{name}-a", "client", "v1", 1, endpoints, *telemetry,
        *(["--policy", str(policy)] if policy else []), *(ids["client"].flags() if ids else []),
        tree=tree)
    return Path2(outbound, [front, *backs], servers, [admin, *admins])


def envoys(tmp: Path, name: str, apps: dict[str, int], ids: dict[str, Identity] | None,
           policy: bool) -> Path2:
    """Envoy A -> one Envoy B per version in ``apps``; with ``ids``, mTLS between them."""
    backs, servers = [], []
    for version, app in apps.items():
        port, admin = free_port(), free_port()
        config = tmp / f"{name}-b-{version}.yaml"
        config.write_text(envoy_config(admin, port, " {cluster: upstream}", HOP_CLUSTER.format(upstream=app),
                                       downstream_tls(ids["upstream"]) if ids else ""))
        backs.append(start_envoy(config, tmp / f"{name}-b-{version}.log"))
        servers.append(port)
    tls = upstream_tls(ids["client"], ids["upstream"]) if ids else ""
    if policy:
        route = ENVOY_ROUTE
        clusters = "".join(ENVOY_CLUSTER.format(name=version, port=port) + tls
                           for version, port in zip(apps, servers, strict=True))
    else:
        route, clusters = " {cluster: upstream}", HOP_CLUSTER.format(upstream=servers[0]) + tls
    port, admin = free_port(), free_port()
    config = tmp / f"{name}-a.yaml"
    config.write_text(envoy_config(admin, port, route, clusters))
    front = start_envoy(config, tmp / f"{name}-a.log")
    return Path2(port, [front, *backs], servers, [])


# new TLS connections ---------------------------------------------------------------------------


def busy_jiffies(cpu: str) -> tuple[int, int]:
    """(busy, total) jiffies of one CPU so far (/proc/stat): busy is all but idle and iowait."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            values = [int(v) for v in line.split()[1:]]
            return sum(values) - values[3] - values[4], sum(values)
    raise RuntimeError(f"no cpu{cpu} in /proc/stat")


def handshakes(
    port: int, me: Identity, server: subprocess.Popen, seconds: int, clients: int
) -> dict[str, float]:
    """Full mutual-TLS handshakes (``openssl s_time -new``, a client certificate, no session
    reuse) from ``clients`` processes on the load core for ``seconds``: connections/s, the
    server's CPU µs per handshake, and how busy each core was."""
    argv = ["taskset", "-c", LOAD_CPU, OPENSSL, "s_time", "-connect", f"127.0.0.1:{port}", "-new",
            "-cert", str(me.cert), "-key", str(me.key), "-CAfile", str(me.bundle), "-time", str(seconds)]
    before_server = cpu_ticks(server.pid)
    before = {cpu: busy_jiffies(cpu) for cpu in (PROXY_CPU, LOAD_CPU)}
    start = time.monotonic()
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(clients)]
    outs = [run.communicate()[0] for run in runs]
    wall = time.monotonic() - start
    used = (cpu_ticks(server.pid) - before_server) / TICKS
    busy = {}
    for cpu, (busy0, total0) in before.items():
        busy1, total1 = busy_jiffies(cpu)
        busy[cpu] = (busy1 - busy0) / max(1, total1 - total0)
    count = 0
    for out in outs:
        found = re.search(r"(\d+) connections in [\d.]+ real seconds", out) or re.search(
            r"(\d+) connections in [\d.]+s", out)
        if not found:
            raise RuntimeError(f"cannot read openssl s_time's output:\n{out}")
        count += int(found[1])
    return {"rate": count / wall, "cpu": used / max(1, count) * 1e6, "server_busy": used / wall,
            "proxy_core": busy[PROXY_CPU], "load_core": busy[LOAD_CPU]}


OPENSSL_SERVER = "openssl s_server, {tickets} tickets"


def openssl_server(me: Identity, tickets: int) -> tuple[int, subprocess.Popen]:
    """A reference for the handshakes: OpenSSL's own C server, the same library our sidecar's
    ``ssl`` module uses, on the proxy core, requiring a client certificate, TLS 1.3 only,
    sending ``tickets`` session tickets after each handshake (Python's default is 2)."""
    port = free_port()
    proc = spawn(PROXY_CPU, OPENSSL, "s_server", "-quiet", "-accept", f"127.0.0.1:{port}",
                 "-cert", str(me.cert), "-key", str(me.key), "-CAfile", str(me.bundle), "-Verify", "2",
                 "-tls1_3", "-num_tickets", str(tickets))  # its log: a line per handshake
    return port, proc


def check_mtls(port: int, me: Identity) -> str:
    """What a client with ``me`` negotiates with the server on ``port`` (protocol, cipher,
    group, and the server certificate's verification), from ``openssl s_client -brief``."""
    out = subprocess.run(
        [OPENSSL, "s_client", "-brief", "-connect", f"127.0.0.1:{port}", "-cert", str(me.cert),
         "-key", str(me.key), "-CAfile", str(me.bundle)],
        input="", capture_output=True, text=True, timeout=10).stderr
    wanted = ("Protocol version", "Ciphersuite", "Peer signature type", "Server Temp Key", "Verification")
    return "; ".join(line.strip() for line in out.splitlines() if line.strip().startswith(wanted))


def mtls_counters(admin: int) -> dict[str, int]:
    """The mTLS lines of a sidecar's /metrics (requests over mTLS, refusals by reason)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    found = re.findall(r"^(meshui_proxy_mtls\S*)\s+(\d+)$", text, re.M)
    return {name: int(value) for name, value in found if int(value)}


# the run ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", action="store_true", help="the full-policy variant (90/10 over v1/v2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--handshake-seconds", type=int, default=5)
    parser.add_argument("--handshake-clients", type=int, default=4,
                        help="openssl s_time processes at once on the load core")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sidecar-mtls-"))
    ids = make_identities(tmp, ["client", "upstream"])
    versions = ("v1", "v2") if args.policy else ("v1",)
    apps = {version: free_port() for version in versions}
    sink = free_port()
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    procs: list[subprocess.Popen] = []
    try:
        procs += [spawn(LOAD_CPU, PY, "-c", UPSTREAM, str(port)) for port in apps.values()]
        procs.append(spawn(LOAD_CPU, PY, "-c", OTLP_SINK, str(sink)))
        # In this order every pair compared below is measured back to back (the order flips
        # each round): ours mTLS next to Envoy's, and each next to its plaintext path.
        paths = {
            "ours-plain": ours(tmp, "ours-plain", apps, None, sink, policy if args.policy else None),
            "ours-mtls": ours(tmp, "ours-mtls", apps, ids, sink, policy if args.policy else None),
            "envoy-mtls": envoys(tmp, "envoy-mtls", apps, ids, args.policy),
            "envoy-plain": envoys(tmp, "envoy-plain", apps, None, args.policy),
        }
        for path in paths.values():
            procs += path.proxies
        for port in (*apps.values(), sink, *(port for path in paths.values() for port in path.ports())):
            wait_port(port)
        negotiated = {name: check_mtls(paths[name].servers[0], ids["client"])
                      for name in ("ours-mtls", "envoy-mtls")}
        for name, line in negotiated.items():
            print(f"{name} B: {line}", flush=True)
        targets = {"direct": (apps["v1"], []), **{name: path.target() for name, path in paths.items()}}
        results = interleaved(targets, args.rounds, args.seconds)
        shakes: dict[str, list[dict[str, float]]] = {}
        if not args.policy:
            servers = {"ours B": (paths["ours-mtls"].servers[0], paths["ours-mtls"].proxies[1]),
                       "Envoy B": (paths["envoy-mtls"].servers[0], paths["envoy-mtls"].proxies[1])}
            for tickets in (2, 0):
                port, proc = openssl_server(ids["upstream"], tickets)
                procs.append(proc)
                servers[OPENSSL_SERVER.format(tickets=tickets)] = (port, proc)
                wait_port(port)
            for round_no in range(args.rounds):
                order = list(servers) if round_no % 2 == 0 else list(reversed(servers))
                for name in order:
                    port, proc = servers[name]
                    one = handshakes(port, ids["client"], proc, args.handshake_seconds,
                                     args.handshake_clients)
                    shakes.setdefault(name, []).append(one)
                    print(f"handshakes {name:30s} {one['rate']:5.0f}/s  server {one['cpu']:5.0f} µs each, "
                          f"busy {one['server_busy']:.0%}; proxy core {one['proxy_core']:.0%}, "
                          f"load core {one['load_core']:.0%}", flush=True)
        counters = {name: [mtls_counters(admin) for admin in paths[name].admins]
                    for name in ("ours-plain", "ours-mtls")}
        print(f"mTLS counters (A, then each B): {counters}", flush=True)
        rss = {name: sum(rss_mb(proc.pid) for proc in path.proxies) for name, path in paths.items()}
        logs = {log.name: log.read_text()[-400:] for log in tmp.glob("*.log") if log.stat().st_size}
    finally:
        stop_all(procs)
    for name, text in logs.items():
        print(f"log {name}: {text}", flush=True)
    write_report(args, results, shakes, rss, negotiated, counters)


def write_report(args: argparse.Namespace, results: dict, shakes: dict, rss: dict, negotiated: dict,
                 counters: dict) -> None:
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    direct = med["direct"]["p50"]
    added = {name: med[name]["p50"] - direct for name in med if name != "direct"}
    proxies = "three proxies (A, B-v1, B-v2)" if args.policy else "both proxies"
    title = "## Sidecar with full policy and mTLS" if args.policy else "## Sidecar hop with mTLS"
    command = "bench/sidecar_mtls.py" + (" --policy" if args.policy else "")
    lines = [
        title,
        "",
        f"`{command}`, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores "
        f"({platform_cpu()}); wrk, the upstreams and the OTLP sink on CPU {LOAD_CPU}, all proxies "
        f"on CPU {PROXY_CPU}; {args.rounds} interleaved rounds of {args.seconds:g} s (the order flips "
        "every round), medians. Path: wrk -> proxy A (plain HTTP) -> proxy B over the mesh hop -> "
        "upstream, ours (sidecar A `client` outbound -> sidecar B `upstream` inbound) and Envoy's "
        "(`--concurrency 1` each), plaintext or mutual TLS between A and B with the same certificates "
        "(one ECDSA P-256 CA, P-256 leaves with a SPIFFE URI SAN; TLS 1.3 only; A checks B's SPIFFE "
        "ID, B requires a client certificate from the bundle). Connections between A and B kept "
        f"alive. CPU/req: {proxies} of the path together (/proc stat), over the c=50 run; added p50 "
        "against direct at c=1. Our sidecars: telemetry on (OTLP to the sink, trace sample 0.01).",
    ]
    if args.policy:
        lines.append("")
        lines.append(
            "Policy on A (bench/sidecar_policy.py's): 90/10 split over v1/v2 (each version behind its "
            "own B), retries (2, gateway errors), outlier detection (5 consecutive 5xx); ours "
            "peak-EWMA, Envoy least-request.")
    lines += [
        "",
        "| path | p50 c=1 (µs) | added p50 (µs) | rps c=50 | CPU/req, all proxies (µs) "
        "| CPU/req, best round (µs) | RSS, all proxies (MB) |",
        "|---|---|---|---|---|---|---|",
        f"| direct | {direct:.1f} | - | {med['direct']['rps']:.0f} | - | - | - |",
    ]
    for name in ("ours-plain", "ours-mtls", "envoy-plain", "envoy-mtls"):
        lines.append(f"| {name} | {med[name]['p50']:.1f} | {added[name]:.1f} | {med[name]['rps']:.0f} | "
                     f"{med[name]['cpu']:.1f} | {min(results[name]['cpu']):.1f} | {rss[name]:.1f} |")
    lines += [
        "",
        "Per round (CPU/req µs): " + "; ".join(
            f"{name} " + ", ".join(f"{v:.1f}" for v in results[name]["cpu"])
            for name in ("ours-plain", "ours-mtls", "envoy-plain", "envoy-mtls")) + ".",
        "",
        "**Goals** (issue 11, mTLS on both sides):",
        "",
        "| goal | ours | Envoy | ratio of medians | per-round ratios, median (min..max) | best rounds' ratio "
        "| target | met (medians) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    direct_p50 = results["direct"]["p50"]
    per_round_added = {name: [p50 - d for p50, d in zip(results[name]["p50"], direct_p50, strict=True)]
                       for name in added}
    goals = (
        ("CPU per request, mTLS", med["ours-mtls"]["cpu"], med["envoy-mtls"]["cpu"],
         results["ours-mtls"]["cpu"], results["envoy-mtls"]["cpu"]),
        ("added p50 (c1), mTLS", added["ours-mtls"], added["envoy-mtls"],
         per_round_added["ours-mtls"], per_round_added["envoy-mtls"]),
    )
    for label, ours_v, theirs, ours_rounds, their_rounds in goals:
        ratio = ours_v / theirs if theirs > 0 else float("inf")
        rounds = paired_ratios(ours_rounds, their_rounds)
        best = min(ours_rounds) / min(their_rounds)
        lines.append(f"| {label} | {ours_v:.1f} µs | {theirs:.1f} µs | {ratio:.2f}x | "
                     f"{statistics.median(rounds):.2f}x ({min(rounds):.2f}..{max(rounds):.2f}) | "
                     f"{best:.2f}x | <= 1.0x | {'yes' if ratio <= 1.0 else 'NO'} |")
    lines += [
        "",
        "**The cost of mTLS** (mTLS minus plaintext, same run):",
        "",
        "| proxies | CPU/req added (µs) | per round (µs) | CPU/req mTLS/plain | added p50, mTLS minus "
        "plain (µs) | per round (µs) | rps mTLS/plain |",
        "|---|---|---|---|---|---|---|",
    ]
    for who in ("ours", "envoy"):
        plain, tls = med[f"{who}-plain"], med[f"{who}-mtls"]
        more_p50 = added[f"{who}-mtls"] - added[f"{who}-plain"]
        cpu_rounds = [t - p for t, p in zip(results[f"{who}-mtls"]["cpu"], results[f"{who}-plain"]["cpu"],
                                            strict=True)]
        p50_rounds = [t - p for t, p in zip(results[f"{who}-mtls"]["p50"], results[f"{who}-plain"]["p50"],
                                            strict=True)]
        cpu_each, p50_each = (", ".join(f"{v:+.0f}" for v in rounds) for rounds in (cpu_rounds, p50_rounds))
        lines.append(f"| {who} | {tls['cpu'] - plain['cpu']:+.1f} | {cpu_each} | "
                     f"{tls['cpu'] / plain['cpu']:.2f}x | {more_p50:+.1f} | {p50_each} | "
                     f"{tls['rps'] / plain['rps']:.2f}x |")
    lines += ["", "Negotiated at B (openssl s_client with A's certificate): " + "; ".join(
        f"{name}: {line}" for name, line in negotiated.items()) + "."]
    over_mtls = sum(c.get("meshui_proxy_mtls_requests_total", 0) for c in counters["ours-mtls"][1:])
    plain_counters = counters["ours-plain"] if any(counters["ours-plain"]) else "none (plaintext)"
    lines += [f"Our mTLS B counted {over_mtls:,} requests over mTLS (A, B: {counters['ours-mtls']}); "
              f"the plaintext pair's mTLS counters: {plain_counters}."]
    if shakes:
        lines += [
            "",
            f"**New TLS connections per second**: {args.handshake_clients} `openssl s_time -new` "
            f"clients at once on CPU {LOAD_CPU} (each with the `client` certificate and key, -CAfile "
            f"the bundle; full handshakes, no resumption), {args.rounds} interleaved rounds of "
            f"{args.handshake_seconds} s against B's mesh port: ours (the inbound listener, "
            "PERMISSIVE) and Envoy B's TLS listener; and, as references, `openssl s_server` (OpenSSL's "
            f"own C server, the {ssl.OPENSSL_VERSION} that our sidecar's `ssl` module links, on CPU "
            f"{PROXY_CPU}, client certificate required, TLS 1.3) sending 2 session tickets a "
            "handshake, as Python's `ssl` does by default, and none. Server CPU per handshake from "
            "/proc/<pid>/stat; busy shares of each core from /proc/stat; a core near 100% is the "
            "bottleneck (other work on the machine counts too).",
            "",
            "| server | connections/s | server CPU per handshake (µs) | server busy | proxy core busy | "
            "load core busy |",
            "|---|---|---|---|---|---|",
        ]
        shake = {name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
                 for name, runs in shakes.items()}
        for name, m in shake.items():
            lines.append(f"| {name} | {m['rate']:.0f} | {m['cpu']:.0f} | {m['server_busy']:.0%} | "
                         f"{m['proxy_core']:.0%} | {m['load_core']:.0%} |")
        ours_s, envoy_s = shake["ours B"], shake["Envoy B"]
        lines += ["", f"Ours against Envoy: {ours_s['rate'] / envoy_s['rate']:.2f}x the connections per "
                  f"second, {ours_s['cpu'] / envoy_s['cpu']:.2f}x the server CPU per handshake. Per round "
                  "(connections/s): " + "; ".join(
                      f"{name} " + ", ".join(f"{run['rate']:.0f}" for run in runs)
                      for name, runs in shakes.items()) + "."]
    lines.append("")
    report(lines, write=not args.no_write)


def platform_cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
