"""Forwarding end to end: a second real collector (or a scripted server) plays the backend.

Real sockets both ways, real Redis, a real OpenTelemetry SDK exporting to the first
collector. Everything the first accepts reaches the backend once, or is counted as dropped
with its reason.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from dataclasses import replace
from pathlib import Path

import redis
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector import graphstore
from collector.forwarder import ForwarderConfig
from collector.publisher import LivePublisherConfig
from collector.receiver import ReceiverConfig
from collector.stats import ForwardStats
from tests.collector.scripted_backend import Reply, ScriptedBackend
from tests.collector.support import ahttp
from tests.collector.support import running_collector as _running_collector
from tests.collector.test_sdk_end_to_end import N, emit
from tests.polling import eventually

GOLDEN = Path(__file__).parent / "golden"
TRACES = (GOLDEN / "traces.pb").read_bytes()  # 10 spans, 1 invalid
TRACES_JSON = (GOLDEN / "traces.json").read_bytes()
METRICS = (GOLDEN / "sidecar_metrics.pb").read_bytes()  # 9 data points
METRICS_JSON = (GOLDEN / "sidecar_metrics.json").read_bytes()
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
# Fast enough for a test, slow enough that a retry is never a busy loop.
QUICK = ForwarderConfig(
    endpoint="http://unset", initial_backoff_s=0.02, max_backoff_s=0.1, drain_timeout_s=0.5
)


def running_collector(redis_url: str, **overrides: object):  # type: ignore[no-untyped-def]
    """A collector without the live publisher (nothing here reads the channel layer)."""
    return _running_collector(redis_url, publisher=LivePublisherConfig(enabled=False), **overrides)


def forwarding_to(url: str, **changes: object) -> ForwarderConfig:
    return replace(QUICK, endpoint=url, **changes)  # type: ignore[arg-type]


def other_db(redis_url: str, db: int) -> str:
    """A flushed database of the same server, for the backend collector's own graph."""
    url = redis_url.rsplit("/", 1)[0] + f"/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


def edges(url: str) -> dict[tuple[str, str], int]:
    client = redis.Redis.from_url(url)
    try:
        graph = graphstore.fetch_graph(client, 120)
    finally:
        client.close()
    return {(e["source"], e["target"]): e["requests"] for e in graph["edges"]}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def forwarding(stats: ForwardStats | None) -> ForwardStats:
    assert stats is not None
    return stats


async def post(port: int | None, path: str, body: bytes, headers: dict[str, str]) -> None:
    status, _, reply = await ahttp("POST", f"http://127.0.0.1:{port}{path}", body, headers)
    assert status == 200, (status, reply)


async def test_everything_sent_to_the_first_collector_reaches_the_second_exactly_once(
    redis_url: str,
) -> None:
    backend_url = other_db(redis_url, 10)
    async with running_collector(backend_url) as backend:
        forward = forwarding_to(f"http://127.0.0.1:{backend.port}")
        async with running_collector(redis_url, forwarder=forward) as first:
            endpoint = f"http://127.0.0.1:{first.port}/v1/traces"
            await asyncio.to_thread(emit, lambda: OTLPSpanExporter(endpoint=endpoint))  # 2N spans
            await post(first.port, "/v1/traces", TRACES, PROTOBUF)
            gzipped = {**PROTOBUF, "Content-Encoding": "gzip"}
            await post(first.port, "/v1/traces", gzip.compress(TRACES), gzipped)
            await post(first.port, "/v1/traces", TRACES_JSON, JSON)
            await post(first.port, "/v1/metrics", METRICS, PROTOBUF)
            await post(first.port, "/v1/metrics", METRICS_JSON, JSON)
            stats = forwarding(first.stats.forwarding)

            def delivered() -> bool:
                done = stats.forwarded["traces"] + stats.backend_rejected["traces"]
                return stats.queue_exports == 0 and done == first.stats.received_spans
            await eventually(delivered, timeout=15, what="every accepted span forwarded")

            # Nothing is queued or in flight, so nothing more can arrive: the counts are final.
            assert first.stats.received_spans == 2 * N + 30
            assert backend.stats.received_spans == first.stats.received_spans
            assert backend.stats.received_points == first.stats.received_points == 18
            assert backend.stats.rejected_spans == stats.backend_rejected["traces"] == 3
            assert stats.forwarded["metrics"] + stats.backend_rejected["metrics"] == 18
            assert sum(stats.dropped.values()) == sum(stats.retries.values()) == 0
            assert {code for (_, code) in stats.requests} == {"200"}

    # Both have flushed on shutdown: the backend's graph (its own Redis database), built from
    # forwarded spans alone, is the first's graph, the SDK app's edge included.
    first_graph, backend_graph = edges(redis_url), edges(backend_url)
    assert first_graph[("shop-web", "shop-api")] >= N
    assert backend_graph == first_graph


async def test_with_the_backend_down_the_queue_stays_at_its_limit_and_ingest_goes_on(
    redis_url: str,
) -> None:
    forward = forwarding_to(f"http://127.0.0.1:{closed_port()}", queue_max_exports=3, drain_timeout_s=0.1)
    async with running_collector(redis_url, forwarder=forward) as first:
        stats = forwarding(first.stats.forwarding)
        for _ in range(10):
            await post(first.port, "/v1/traces", TRACES, PROTOBUF)  # every one accepted: 200
        assert first.stats.received_spans == 100
        assert (stats.queue_exports, stats.queue_bytes) == (3, 3 * len(TRACES))
        assert stats.dropped["traces", "queue_full"] == 70
        await eventually(lambda: stats.retries["traces"] >= 2, what="retries against the closed port")
        assert stats.requests["traces", "error"] >= 2 and stats.forwarded["traces"] == 0
    # What was still queued when the collector stopped is counted too: every span accounted for.
    assert stats.dropped["traces", "shutdown"] == 30
    assert (stats.queue_exports, stats.queue_bytes) == (0, 0)


async def test_the_queue_is_bounded_by_bytes_too(redis_url: str) -> None:
    forward = forwarding_to(f"http://127.0.0.1:{closed_port()}", queue_max_bytes=2 * len(TRACES) + 100,
                            drain_timeout_s=0.1)
    receiver = ReceiverConfig(port=0, max_body_bytes=2 * len(TRACES))
    async with running_collector(redis_url, forwarder=forward, receiver=receiver) as first:
        stats = forwarding(first.stats.forwarding)
        for _ in range(5):
            await post(first.port, "/v1/traces", TRACES, PROTOBUF)
        assert (stats.queue_exports, stats.queue_bytes) == (2, 2 * len(TRACES))
        assert stats.dropped["traces", "queue_full"] == 30


async def test_a_503_is_retried_once_honouring_retry_after_and_the_data_arrives_once(redis_url: str) -> None:
    busy = Reply(503, (("content-type", "application/x-protobuf"), ("retry-after", "0")))
    async with ScriptedBackend(script=[busy]) as backend:
        # Backoff alone would wait 30 s: Retry-After: 0 is what makes the retry immediate.
        forward = forwarding_to(
            backend.url + "/otlp", initial_backoff_s=30, max_backoff_s=30,
            headers=(("Authorization", "Bearer s3cret"),),
        )
        async with running_collector(redis_url, forwarder=forward) as first:
            stats = forwarding(first.stats.forwarding)
            await post(first.port, "/v1/traces", TRACES, PROTOBUF)
            await eventually(lambda: stats.forwarded["traces"] == 10, what="the spans delivered")
            assert [r.path for r in backend.received] == ["/otlp/v1/traces", "/otlp/v1/traces"]
            # As received, byte for byte, both times; with the configured header.
            assert {r.body for r in backend.received} == {TRACES}
            assert backend.received[0].headers["authorization"] == "Bearer s3cret"
            assert backend.received[0].headers["content-type"] == "application/x-protobuf"
            assert stats.requests == {("traces", "503"): 1, ("traces", "200"): 1}
            assert stats.retries["traces"] == 1 and sum(stats.dropped.values()) == 0


async def test_a_400_is_not_retried_and_counted_as_rejected(redis_url: str) -> None:
    bad = Reply(400, (("content-type", "application/json"),), b'{"code": 3, "message": "no such tenant"}')
    async with ScriptedBackend(script=[bad]) as backend:
        async with running_collector(redis_url, forwarder=forwarding_to(backend.url)) as first:
            stats = forwarding(first.stats.forwarding)
            await post(first.port, "/v1/traces", TRACES, PROTOBUF)
            await eventually(lambda: stats.dropped["traces", "rejected"] == 10, what="the rejection counted")
            # The queue moved on: the next export is delivered, the rejected one never resent.
            await post(first.port, "/v1/traces", TRACES, PROTOBUF)
            await eventually(lambda: stats.forwarded["traces"] == 10, what="the next export delivered")
            assert len(backend.received) == 2 and stats.retries["traces"] == 0
            assert stats.requests == {("traces", "400"): 1, ("traces", "200"): 1}
            health = first.stats.as_dict()["forwarding"]
            assert health["dropped_spans"]["rejected"] == 10 and health["forwarded_spans"] == 10


async def test_a_backend_that_stays_unavailable_is_given_up_on_after_the_max_retry_time(
    redis_url: str,
) -> None:
    busy = Reply(503, (("content-type", "application/x-protobuf"),))
    async with ScriptedBackend(then=busy) as backend:
        forward = forwarding_to(backend.url, max_retry_time_s=0.3)
        async with running_collector(redis_url, forwarder=forward) as first:
            stats = forwarding(first.stats.forwarding)
            await post(first.port, "/v1/traces", TRACES, PROTOBUF)
            await eventually(lambda: stats.dropped["traces", "retries_exhausted"] == 10, what="given up")
            assert stats.retries["traces"] >= 1 and stats.queue_exports == 0
            text = first.stats.prometheus()
            family = "meshui_collector_forward_dropped_total"
            assert f'{family}{{signal="traces",reason="retries_exhausted"}} 10' in text


async def test_partial_success_from_the_backend_is_counted(redis_url: str) -> None:
    partial = ExportTraceServiceResponse()
    partial.partial_success.rejected_spans = 4
    partial.partial_success.error_message = "too old"
    reply = Reply(200, body=partial.SerializeToString())
    async with ScriptedBackend(then=reply) as backend:
        async with running_collector(redis_url, forwarder=forwarding_to(backend.url)) as first:
            stats = forwarding(first.stats.forwarding)
            await post(first.port, "/v1/traces", TRACES, PROTOBUF)
            await eventually(lambda: stats.forwarded["traces"] == 6, what="the accepted spans")
            assert stats.backend_rejected["traces"] == 4


async def test_json_is_forwarded_as_json_and_only_configured_signals_go(redis_url: str) -> None:
    async with ScriptedBackend(then=Reply(200, (("content-type", "application/json"),), b"{}")) as backend:
        forward = forwarding_to(backend.url, signals=("traces",))
        async with running_collector(redis_url, forwarder=forward) as first:
            stats = forwarding(first.stats.forwarding)
            await post(first.port, "/v1/metrics", METRICS, PROTOBUF)  # not a signal it forwards
            await post(first.port, "/v1/traces", TRACES_JSON, JSON)
            await eventually(lambda: stats.forwarded["traces"] == 10, what="the JSON spans")
            assert [(r.path, r.headers["content-type"], r.body) for r in backend.received] == [
                ("/v1/traces", "application/json", TRACES_JSON)
            ]
            assert stats.forwarded["metrics"] == 0 and sum(stats.dropped.values()) == 0


async def test_protobuf_exports_queued_together_arrive_as_one_request_holding_them_all(
    redis_url: str,
) -> None:
    connected, gate = asyncio.Event(), asyncio.Event()

    class Slow(ScriptedBackend):
        async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connected.set()
            await gate.wait()  # hold the first request until the rest are queued
            await super()._serve(reader, writer)

    async with Slow() as backend:
        async with running_collector(redis_url, forwarder=forwarding_to(backend.url)) as first:
            stats = forwarding(first.stats.forwarding)
            await post(first.port, "/v1/traces", TRACES, PROTOBUF)
            await asyncio.wait_for(connected.wait(), 10)  # the first is in flight, alone
            for _ in range(3):
                await post(first.port, "/v1/traces", TRACES, PROTOBUF)
            gate.set()
            await eventually(lambda: stats.forwarded["traces"] == 40, what="all forty spans")
            assert len(backend.received) == 2  # the first alone, then the three queued behind it
            merged = ExportTraceServiceRequest.FromString(backend.received[1].body)
            one = ExportTraceServiceRequest.FromString(TRACES)
            assert list(merged.resource_spans) == list(one.resource_spans) * 3
