"""The graph in a real Redis: exact counts, several collectors, Redis going down and back."""

from __future__ import annotations

from urllib.parse import urlsplit

import redis
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector import graphstore
from collector.redis_exporter import RedisExporterConfig
from tests.collector.support import ahttp, eventually, running_collector
from tests.collector.tcp_cut import CuttableLink

PB = {"Content-Type": "application/x-protobuf"}


def root_spans(service: str, n: int, first: int = 1) -> bytes:
    """``n`` root SERVER spans of ``service``: each is one request on unknown -> service."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    spans = rs.scope_spans.add().spans
    for i in range(first, first + n):
        spans.add(trace_id=i.to_bytes(16, "big"), span_id=i.to_bytes(8, "big"), kind=2,
                  start_time_unix_nano=1, end_time_unix_nano=2_000_001)
    return request.SerializeToString()


def edge_requests(redis_url: str, source: str, target: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        graph = graphstore.fetch_graph(client, 300)
    finally:
        client.close()
    return sum(e["requests"] for e in graph["edges"]
               if (e["source"], e["target"]) == (source, target))


async def test_the_graph_in_redis_has_exact_counts(redis_url: str) -> None:
    async with running_collector(redis_url) as collector:
        url = f"http://127.0.0.1:{collector.port}/v1/traces"
        for batch in range(5):
            assert (await ahttp("POST", url, root_spans("api", 200, batch * 200 + 1), PB))[0] == 200
        await eventually(lambda: edge_requests(redis_url, "unknown", "api") == 1000)
    assert edge_requests(redis_url, "unknown", "api") == 1000


async def test_two_collectors_writing_to_one_redis_add_up_exactly(redis_url: str) -> None:
    async with running_collector(redis_url) as one, running_collector(redis_url) as two:
        for i in range(10):
            collector = one if i % 2 else two
            url = f"http://127.0.0.1:{collector.port}/v1/traces"
            assert (await ahttp("POST", url, root_spans("api", 37, i * 37 + 1), PB))[0] == 200
    # Shutdown flushed both collectors.
    assert edge_requests(redis_url, "unknown", "api") == 370


async def test_redis_down_gets_503_and_recovery_loses_no_counted_increment(redis_url: str) -> None:
    real = urlsplit(redis_url)
    link = CuttableLink(real.hostname or "127.0.0.1", real.port or 6379)
    await link.start()
    via_link = f"redis://127.0.0.1:{link.port}{real.path}"
    try:
        async with running_collector(via_link, redis_exporter=RedisExporterConfig(
                socket_timeout_s=0.5)) as collector:
            url = f"http://127.0.0.1:{collector.port}/v1/traces"
            assert (await ahttp("POST", url, root_spans("api", 10, 1), PB))[0] == 200
            await eventually(lambda: edge_requests(redis_url, "unknown", "api") == 10)

            link.cut()
            # Accepted before the collector could know Redis is gone: must not be lost.
            assert (await ahttp("POST", url, root_spans("api", 20, 11), PB))[0] == 200
            await eventually(lambda: collector.stats.redis_write_errors > 0)
            status, headers, _ = await ahttp("POST", url, root_spans("api", 5, 31), PB)
            assert status == 503
            assert headers["retry-after"] == "1"
            assert collector.stats.refused["redis_unavailable"] == 1

            link.restore()
            await eventually(lambda: edge_requests(redis_url, "unknown", "api") == 30)
            await eventually(lambda: collector.stats.redis_available)
            assert (await ahttp("POST", url, root_spans("api", 5, 31), PB))[0] == 200
            await eventually(lambda: edge_requests(redis_url, "unknown", "api") == 35)
    finally:
        await link.close()
    assert edge_requests(redis_url, "unknown", "api") == 35


async def test_a_long_outage_refuses_exports_once_the_backlog_is_full(redis_url: str) -> None:
    async with running_collector(redis_url, redis_exporter=RedisExporterConfig(
            max_pending_fields=3)) as collector:
        collector.stats.pending_fields = 4  # as if flushes kept failing with a backlog
        assert collector.refuse_reason() == "the collector's write backlog is full; retry later"
