"""Benchmark: cost of one sidecar hop, against a direct connection and Envoy, in the same run.

    .venv/bin/python bench/sidecar_hop.py [--rounds 3] [--seconds 4]

Starts a tiny httptools/uvloop upstream, an OTLP sink, our sidecar (outbound listener ->
upstream via a static endpoints file, telemetry on, exporting to the sink) and Envoy
(``--concurrency 1``, circuit breakers raised, no request ids, no dynamic stats). wrk is
pinned to one core, the proxies to the other (taskset); runs are interleaved by round.
Measures added p50 at concurrency 1, rps at concurrency 50, proxy CPU µs per request
(/proc/<pid>/stat utime+stime over the saturation run), and proxy RSS. Prints ratios and
writes the ``## Sidecar hop`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.results import report  # noqa: E402

PY = str(ROOT / ".venv/bin/python")
ENVOY = str(ROOT / ".venv/bin/envoy")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
TICKS = os.sysconf("SC_CLK_TCK")
PROXY_CPU, LOAD_CPU = "0", "1"

UPSTREAM = r"""
import asyncio, sys, httptools, uvloop
BODY = b"hello, world\n"
RESP = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\ncontent-type: text/plain\r\n\r\n%s" % (len(BODY), BODY)
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.p = httptools.HttpRequestParser(self)
    def data_received(self, d):
        try: self.p.feed_data(d)
        except httptools.HttpParserError: self.t.close()
    def on_message_complete(self): self.t.write(RESP)
async def main():
    s = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    await s.serve_forever()
uvloop.run(main())
"""

OTLP_SINK = r"""
import asyncio, sys, httptools, uvloop
RESP = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.p = httptools.HttpRequestParser(self)
    def data_received(self, d):
        try: self.p.feed_data(d)
        except httptools.HttpParserError: self.t.close()
    def on_message_complete(self): self.t.write(RESP)
async def main():
    s = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    await s.serve_forever()
uvloop.run(main())
"""

HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
ENVOY_LISTENER = """
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - name: hop
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {hcm_type}
          stat_prefix: hop
          generate_request_id: false
          codec_type: HTTP1
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route:{route}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              dynamic_stats: false{listener_tls}
  clusters:{clusters}
"""

HOP_CLUSTER = """
  - name: upstream
    type: STATIC
    connect_timeout: 1s
    circuit_breakers:
      thresholds:
      - {{max_connections: 100000, max_pending_requests: 100000, max_requests: 100000, max_retries: 100000}}
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream}}}}}}}
"""


def envoy_config(admin: int, port: int, route: str, clusters: str, listener_tls: str = "") -> str:
    """Envoy's bootstrap for the benchmarks: one HTTP/1.1 listener, ``route`` and ``clusters``.

    Follows Envoy's own benchmarking advice: no request ids, no dynamic stats.
    ``listener_tls``: a ``transport_socket`` for the listener's filter chain (6 spaces in).
    """
    return ENVOY_LISTENER.format(admin=admin, port=port, hcm_type=HCM_TYPE, route=route, clusters=clusters,
                                 listener_tls=listener_tls)


def start_envoy(config: Path, log: Path) -> subprocess.Popen:
    """Envoy on the proxy core with one worker (``--concurrency 1``), as the sidecar has one loop.

    Hot restart off: its shared memory would keep a second Envoy on the machine from starting."""
    return spawn(PROXY_CPU, ENVOY, "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
                 "--log-level", "error", log=log)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def spawn(cpu: str, *argv: str, log: Path | None = None, cwd: Path = ROOT) -> subprocess.Popen:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(["taskset", "-c", cpu, *argv], stdout=out, stderr=subprocess.STDOUT, cwd=cwd)


def stop_all(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every process, then SIGKILL any still there after 5 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


_UNITS = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def wrk(port: int, connections: int, seconds: float) -> tuple[float, float, int]:
    """(p50 µs, requests/s, requests) from one wrk run pinned to the load core."""
    out = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CPU,
            WRK,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-H",
            "Host: upstream",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not (p50 and rps and total):
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    if "Non-2xx" in out or "Socket errors" in out:
        print(f"  warning: errors in wrk run on {port}:\n{out}", file=sys.stderr)
    return float(p50[1]) * _UNITS[p50[2]], float(rps[1]), int(total[1])


# A target: the port wrk sends to, and the proxy processes on the path whose CPU counts
# (none for direct; both proxies of a two-proxy path).
Target = tuple[int, "list[subprocess.Popen]"]
Results = dict[str, dict[str, list[float]]]


def measure(targets: dict[str, Target], rounds: int, seconds: float) -> Results:
    """Interleaved rounds over ``targets`` (name -> (port, proxy processes)).

    Per round and target: p50 at concurrency 1 (µs), then rps at concurrency 50 and the
    proxies' CPU µs per request (summed over them) over that saturation run.
    """
    for port, _ in targets.values():  # warm up: pools (all 50 connections), caches and allocators
        wrk(port, 50, 1)
    results: Results = {name: {"p50": [], "rps": [], "cpu": []} for name in targets}
    for round_no in range(1, rounds + 1):
        for name, (port, procs) in targets.items():
            p50, _, _ = wrk(port, 1, seconds)
            before = sum(cpu_ticks(proc.pid) for proc in procs)
            _, rps, total = wrk(port, 50, seconds)
            used = (sum(cpu_ticks(proc.pid) for proc in procs) - before) / TICKS
            results[name]["p50"].append(p50)
            results[name]["rps"].append(rps)
            results[name]["cpu"].append(used / total * 1e6 if procs else 0.0)
            print(
                f"round {round_no} {name:14s} p50(c1) {p50:7.1f} µs  rps(c50) {rps:9.0f}"
                + (f"  cpu {used / total * 1e6:5.1f} µs/req" if procs else ""),
                flush=True,
            )
    return results


def interleaved(targets: dict[str, Target], rounds: int, seconds: float) -> Results:
    """``measure`` one round at a time, the order reversed every other round: a target
    measured last in every round would carry any drift within a round alone."""
    results: Results = {}
    for round_no in range(rounds):
        names = list(targets) if round_no % 2 == 0 else list(reversed(targets))
        print(f"-- round {round_no + 1} of {rounds}", flush=True)
        one = measure({name: targets[name] for name in names}, 1, seconds)
        for name, values in one.items():
            for key, value in values.items():
                results.setdefault(name, {}).setdefault(key, []).extend(value)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    parser.add_argument("--tail-ab", action="store_true",
                        help="instead: the sidecar with tail keep's ring on vs off, interleaved")
    parser.add_argument("--tail-rings", default="0,4096",
                        help="with --tail-ab: ring sizes to compare, the first 0 (off)")
    parser.add_argument("--run-requests", help=argparse.SUPPRESS)  # RING,COUNT: for instructions()
    args = parser.parse_args()
    if args.run_requests:
        ring, count = (int(part) for part in args.run_requests.split(","))
        run_requests(ring, count)
        return
    if args.tail_ab:
        rings = [int(ring) for ring in args.tail_rings.split(",")]
        if rings[0] != 0:
            parser.error("--tail-rings starts with 0 (tail keep off, the baseline)")
        tail_ab(rings, args.rounds, args.seconds, write=not args.no_write)
        return

    tmp = Path(tempfile.mkdtemp(prefix="sidecar-hop-"))
    up_port, sink_port, envoy_port, envoy_admin = free_port(), free_port(), free_port(), free_port()
    sc_in, sc_out, sc_admin = free_port(), free_port(), free_port()
    (tmp / "endpoints.json").write_text(
        json.dumps({"upstream": [{"instance": "u1", "version": "v1", "address": f"127.0.0.1:{up_port}"}]})
    )
    (tmp / "envoy.yaml").write_text(
        envoy_config(envoy_admin, envoy_port, " {cluster: upstream}", HOP_CLUSTER.format(upstream=up_port))
    )
    procs: list[subprocess.Popen] = []
    try:
        procs.append(spawn(LOAD_CPU, PY, "-c", UPSTREAM, str(up_port)))
        procs.append(spawn(LOAD_CPU, PY, "-c", OTLP_SINK, str(sink_port)))
        sidecar = spawn(
            PROXY_CPU, PY, "-m", "proxies", "--service", "bench", "--version", "v1",
            "--app", "127.0.0.1:1", "--inbound", f"127.0.0.1:{sc_in}",
            "--outbound", f"127.0.0.1:{sc_out}", "--admin", f"127.0.0.1:{sc_admin}",
            "--endpoints", str(tmp / "endpoints.json"), "--otlp", f"http://127.0.0.1:{sink_port}",
            "--trace-sample", "0.01", "--log-level", "WARNING",
            log=tmp / "sidecar.log",
        )  # fmt: skip
        envoy = start_envoy(tmp / "envoy.yaml", tmp / "envoy.log")
        procs += [sidecar, envoy]
        for port in (up_port, sink_port, sc_out, envoy_port):
            wait_port(port)
        targets = {"direct": (up_port, []), "sidecar": (sc_out, [sidecar]), "envoy": (envoy_port, [envoy])}
        results = measure(targets, args.rounds, args.seconds)
        rss = {"sidecar": rss_mb(sidecar.pid), "envoy": rss_mb(envoy.pid)}
        try:
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{sc_admin}/metrics", timeout=2).read()
            exported = re.search(rb'meshui_telemetry_exported_total\{signal="metrics"\} (\d+)', metrics)
            count = exported[1].decode() if exported else "?"
            telemetry_note = f"sidecar meshui_telemetry_exported_total{{signal=metrics}}: {count}"
        except OSError as exc:
            telemetry_note = f"admin metrics unavailable: {exc}"
    finally:
        stop_all(procs)

    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    direct = med["direct"]["p50"]
    added = {n: med[n]["p50"] - direct for n in ("sidecar", "envoy")}
    goals = [
        ("added p50 (c1)", added["sidecar"], added["envoy"], 1.5, "µs"),
        ("CPU per request", med["sidecar"]["cpu"], med["envoy"]["cpu"], 2.0, "µs"),
        ("RSS", rss["sidecar"], rss["envoy"], 0.5, "MB"),
    ]
    lines = [
        "## Sidecar hop",
        "",
        f"`bench/sidecar_hop.py`, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores; "
        f"wrk on CPU {LOAD_CPU}, proxy on CPU {PROXY_CPU}; {args.rounds} interleaved rounds of "
        f"{args.seconds:g} s, medians. Sidecar: outbound listener -> upstream (static endpoints), "
        f"telemetry on (OTLP to a local sink, trace sample 0.01). Envoy: `--concurrency 1`.",
        "",
        "| path | p50 c=1 (µs) | added p50 (µs) | rps c=50 | proxy CPU/req (µs) | RSS (MB) |",
        "|---|---|---|---|---|---|",
        f"| direct | {direct:.1f} | - | {med['direct']['rps']:.0f} | - | - |",
    ]
    for name in ("sidecar", "envoy"):
        lines.append(
            f"| {name} | {med[name]['p50']:.1f} | {added[name]:.1f} | {med[name]['rps']:.0f} | "
            f"{med[name]['cpu']:.1f} | {rss[name]:.1f} |"
        )
    lines += ["", "| goal | sidecar | envoy | ratio | target | met |", "|---|---|---|---|---|---|"]
    for label, ours, theirs, target, unit in goals:
        ratio = ours / theirs if theirs > 0 else float("inf")
        lines.append(
            f"| {label} | {ours:.1f} {unit} | {theirs:.1f} {unit} | {ratio:.2f}x | "
            f"<= {target}x | {'yes' if ratio <= target else 'NO'} |"
        )
    lines += [
        "",
        f"rps vs direct: sidecar {med['sidecar']['rps'] / med['direct']['rps']:.2f}x, "
        f"envoy {med['envoy']['rps'] / med['direct']['rps']:.2f}x. {telemetry_note}. "
        "wrk reports latency to 10 µs steps at this scale; per-round numbers are printed by the script.",
        "",
    ]
    report(lines, write=not args.no_write)


class _FakeTransport:
    """What the data path writes to, in memory (the in-process A/B has no sockets)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


def in_process(rings: list[int], trials: int = 40, requests: int = 2000) -> dict[int, list[float]]:
    """µs of CPU per outbound keep-alive request through the real data path on fake sockets,
    for each ring size (0: tail keep off), trials interleaved; a trial is ``requests`` requests."""
    import asyncio

    from proxies.dataplane.plane import DataPlane
    from proxies.dataplane.upstream import UpstreamConnection
    from proxies.telemetry import Resource, SpanData, Telemetry, tracecontext
    from proxies.telemetry.tailkeep import TailKeepConfig, TailKeeper

    async def run() -> dict[int, list[float]]:
        planes = {}
        tails = {}
        for ring in rings:
            telemetry = Telemetry(Resource("bench", "v1", "bench-1"), None, 0.01)
            conns: list[UpstreamConnection] = []

            async def connect(pool, conns=conns):  # type: ignore[no-untyped-def]
                conn = UpstreamConnection(pool)
                conn.connection_made(_FakeTransport())  # type: ignore[arg-type]
                conns.append(conn)
                return conn

            tail = TailKeeper(TailKeepConfig(ring_size=ring), telemetry) if ring else None
            plane = DataPlane(
                service="bench", version="v1", app=("127.0.0.1", 1), telemetry=telemetry,
                trace_incoming=tracecontext.incoming, trace_sample=0.01, span_factory=SpanData,
                connector=connect, tail=tail,
            )  # fmt: skip
            plane.registry.apply(1, {"upstream": [{"instance": "u1", "version": "v1",
                                                   "address": "127.0.0.1:9"}]})
            client = plane.downstream_factory(True)()
            transport = _FakeTransport()
            client.connection_made(transport)  # type: ignore[arg-type]
            client.data_received(REQUEST)  # the first request opens the pooled connection
            while not conns:
                await asyncio.sleep(0)
            await asyncio.sleep(0)
            conns[0].data_received(RESPONSE)
            planes[ring] = (client, conns[0], transport)
            tails[ring] = tail
        results: dict[int, list[float]] = {ring: [] for ring in planes}
        perf = time.perf_counter
        for trial in range(trials):
            order = list(planes) if trial % 2 == 0 else list(reversed(planes))
            for ring in order:
                client, upstream, transport = planes[ring]
                start = perf()
                for _ in range(requests):
                    client.data_received(REQUEST)
                    upstream.data_received(RESPONSE)
                results[ring].append((perf() - start) / requests * 1e6)
                transport.data.clear()
        for ring, tail in tails.items():
            assert tail is None or tail.ring.held() > min(ring // 2, 100), f"ring {ring} held nothing"
        return results

    return asyncio.run(run())


def run_requests(ring: int, count: int) -> None:
    """``count`` requests through the in-process data path (run under valgrind by ``instructions``)."""
    import asyncio

    from proxies.dataplane.plane import DataPlane
    from proxies.dataplane.upstream import UpstreamConnection
    from proxies.telemetry import Resource, SpanData, Telemetry, tracecontext
    from proxies.telemetry.tailkeep import TailKeepConfig, TailKeeper

    async def run() -> None:
        telemetry = Telemetry(Resource("bench", "v1", "bench-1"), None, 0.01)
        conns: list[UpstreamConnection] = []

        async def connect(pool):  # type: ignore[no-untyped-def]
            conn = UpstreamConnection(pool)
            conn.connection_made(_FakeTransport())  # type: ignore[arg-type]
            conns.append(conn)
            return conn

        plane = DataPlane(
            service="bench", version="v1", app=("127.0.0.1", 1), telemetry=telemetry,
            trace_incoming=tracecontext.incoming, trace_sample=0.01, span_factory=SpanData,
            connector=connect, tail=TailKeeper(TailKeepConfig(ring_size=ring), telemetry) if ring else None,
        )  # fmt: skip
        plane.registry.apply(1, {"upstream": [{"instance": "u1", "version": "v1", "address": "127.0.0.1:9"}]})
        client = plane.downstream_factory(True)()
        transport = _FakeTransport()
        client.connection_made(transport)  # type: ignore[arg-type]
        client.data_received(REQUEST)
        while not conns:
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        conns[0].data_received(RESPONSE)
        for _ in range(count):
            client.data_received(REQUEST)
            conns[0].data_received(RESPONSE)
            if len(transport.data) > 1 << 20:
                transport.data.clear()

    asyncio.run(run())


def instructions(ring: int, low: int = 5000, high: int = 15000) -> float | None:
    """Instructions per request (valgrind's cachegrind, I refs) of the in-process data path:
    the difference between ``high`` and ``low`` requests, so start-up cancels out. Counted,
    not timed: the same on a busy machine as on a quiet one. None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    counts = []
    for count in (low, high):
        out = subprocess.run(
            [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
             PY, str(Path(__file__)), "--run-requests", f"{ring},{count}"],
            capture_output=True, text=True, check=True, cwd=ROOT,
        ).stderr
        found = re.search(r"I\s+refs:\s+([\d,]+)", out)
        if not found:
            raise RuntimeError(f"no instruction count from valgrind:\n{out[-2000:]}")
        counts.append(int(found[1].replace(",", "")))
    return (counts[1] - counts[0]) / (high - low)


REQUEST = b"GET http://upstream/items/42 HTTP/1.1\r\nHost: upstream\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\ncontent-type: text/plain\r\n\r\nhello, world\n"


def tail_ab(rings: list[int], rounds: int, seconds: float, write: bool) -> None:
    """Sidecars the same but for ``--tail-ring`` (the first of ``rings``, 0, is tail keep off),
    measured in turn each round, in process and end to end.

    Trace sample 0.01 as above: 99% of the requests are unsampled and leave a record in the
    ring (the upstream never fails or stalls, so nothing is kept: this is the common case's
    cost). The order flips every other round; ratios are taken within each round.
    """
    from bench.results import paired_ratios, spread

    print("instructions per request (valgrind), for each ring", flush=True)
    counted = {ring: instructions(ring) for ring in rings}
    print(counted, flush=True)
    print("in process: the data path on fake sockets, for each ring, interleaved", flush=True)
    local = in_process(rings)
    tmp = Path(tempfile.mkdtemp(prefix="sidecar-tail-ab-"))
    up_port, sink_port = free_port(), free_port()
    (tmp / "endpoints.json").write_text(
        json.dumps({"upstream": [{"instance": "u1", "version": "v1", "address": f"127.0.0.1:{up_port}"}]})
    )
    procs: list[subprocess.Popen] = []
    targets: dict[str, Target] = {}
    names = {ring: "ring off" if ring == 0 else f"ring {ring}" for ring in rings}
    try:
        procs.append(spawn(LOAD_CPU, PY, "-c", UPSTREAM, str(up_port)))
        procs.append(spawn(LOAD_CPU, PY, "-c", OTLP_SINK, str(sink_port)))
        for ring, name in names.items():
            inbound, outbound, admin = free_port(), free_port(), free_port()
            proc = spawn(
                PROXY_CPU, PY, "-m", "proxies", "--service", "bench", "--version", "v1",
                "--app", "127.0.0.1:1", "--inbound", f"127.0.0.1:{inbound}",
                "--outbound", f"127.0.0.1:{outbound}", "--admin", f"127.0.0.1:{admin}",
                "--endpoints", str(tmp / "endpoints.json"), "--otlp", f"http://127.0.0.1:{sink_port}",
                "--trace-sample", "0.01", "--tail-ring", str(ring), "--log-level", "WARNING",
                log=tmp / f"{name.replace(' ', '-')}.log",
            )  # fmt: skip
            procs.append(proc)
            targets[name] = (outbound, [proc])
        for port in (up_port, sink_port, *(p for p, _ in targets.values())):
            wait_port(port)
        results = interleaved(targets, rounds, seconds)
        rss = {name: rss_mb(procs[0].pid) for name, (_, procs) in targets.items()}
    finally:
        stop_all(procs)

    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    off = names[rings[0]]
    lines = [
        "## Sidecar hop: tail keep on vs off",
        "",
        f"`bench/sidecar_hop.py --tail-ab --tail-rings {','.join(map(str, rings))}`, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores; wrk on CPU {LOAD_CPU}, the "
        f"sidecars on CPU {PROXY_CPU}, measured in turn; {rounds} interleaved rounds of {seconds:g} s "
        "(the order flips every round), medians. The hop of `## Sidecar hop` (outbound -> upstream, "
        "static endpoints, OTLP to a local sink, trace sample 0.01), with tail keep off "
        "(`--tail-ring 0`) and with rings of these sizes: 99% of the requests leave a record; the "
        "upstream never fails or stalls, so this is the common case's cost.",
        "",
        "**End to end** (processes, wrk; ratios within each round against ring off):",
        "",
        "| sidecar | proxy CPU/req (µs) | CPU vs off, median of rounds (min..max) | p50 c=1 (µs) | "
        "rps c=50 | RSS at the end (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for name in names.values():
        ratio = paired_ratios(results[name]["cpu"], results[off]["cpu"])
        vs = "-" if name == off else (
            f"{statistics.median(ratio):.3f}x ({min(ratio):.2f}..{max(ratio):.2f})")
        lines.append(
            f"| {name} | {med[name]['cpu']:.1f} | {vs} | {med[name]['p50']:.0f} | "
            f"{med[name]['rps']:.0f} | {rss[name]:.1f} |")
    lines += [
        "",
        f"Ring off's own round-to-round spread: ±{spread(results[off]['cpu']) * 100:.1f}% (CPU/req).",
        "",
        "**Counted** (valgrind's cachegrind, instructions per request of the in-process data path "
        "below: the difference between 15,000 and 5,000 requests; a count, so the machine's load "
        "does not move it):",
        "",
        "| sidecar | instructions/request | added | vs off |",
        "|---|---|---|---|",
    ]
    base = counted[rings[0]]
    for ring, name in names.items():
        count = counted[ring]
        if count is None or base is None:
            lines.append(f"| {name} | (no valgrind) | | |")
        else:
            lines.append(f"| {name} | {count:,.0f} | {count - base:+,.0f} | {count / base:.3f}x |")
    lines += [
        "",
        "**In process** (`in_process()`: the same request through the real data path on in-memory "
        "transports, no syscalls, no wrk; 40 interleaved trials of 2000 requests; the minimum is the "
        "cost without interference, the median with what the machine does meanwhile):",
        "",
        "| sidecar | CPU/req (µs), minimum | added | vs off | median | median vs off |",
        "|---|---|---|---|---|---|",
    ]
    base_min, base_med = min(local[rings[0]]), statistics.median(local[rings[0]])
    for ring, name in names.items():
        low, mid = min(local[ring]), statistics.median(local[ring])
        lines.append(
            f"| {name} | {low:.2f} | {low - base_min:+.2f} | {low / base_min:.3f}x | {mid:.2f} | "
            f"{mid / base_med:.3f}x |")
    lines.append("")
    default = rings[1] if len(rings) > 1 else None
    if default is not None and base and counted.get(default):
        share = (counted[default] / base - 1) * 100  # type: ignore[operator]
        python_part = base_min / med[off]["cpu"]
        lines += [
            f"Goal: the ring costs at most ~5% of the hop. Counted, a {default}-record ring adds "
            f"{counted[default] - base:,.0f} instructions a request: {share:.1f}% of the data path's "  # type: ignore[operator]
            "own Python (in process), an upper bound for the hop, which also pays uvloop, the "
            "kernel and the sockets that the ring does not touch. With this run's timings the "
            f"Python is {python_part * 100:.0f}% of the hop's CPU ({base_min:.1f} µs in process at "
            f"best against {med[off]['cpu']:.1f} µs end to end), so the ring's share of the hop is "
            f"about {share * python_part:.1f}%. The timed ratios above carry this machine's noise "
            "(ring off's own spread: other work shares its two cores); the count does not.",
            "",
        ]
    report(lines, write=write)

if __name__ == "__main__":
    main()
