"""The graph in a real Redis: exact counts, several collectors, Redis going down and back."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import orjson
import pytest
import redis
import redis.asyncio as aredis
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector import graphstore, graphwriter
from collector.publisher import LivePublisherConfig
from collector.redis_exporter import RedisExporterConfig, redis_client
from tests.clock import FakeClock
from tests.collector.support import ahttp, redis_through_a_link, running_collector
from tests.polling import eventually

PB = {"Content-Type": "application/x-protobuf"}
Response = tuple[int, dict[str, str], bytes]


def root_spans(service: str, n: int, first: int = 1) -> bytes:
    """``n`` root SERVER spans of ``service``: each is one request on unknown -> service."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    spans = rs.scope_spans.add().spans
    for i in range(first, first + n):
        spans.add(
            trace_id=i.to_bytes(16, "big"),
            span_id=i.to_bytes(8, "big"),
            kind=2,
            start_time_unix_nano=1,
            end_time_unix_nano=2_000_001,
        )
    return request.SerializeToString()


def edge_requests(redis_url: str, source: str, target: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        graph = graphstore.fetch_graph(client, 300)
    finally:
        client.close()
    return sum(e["requests"] for e in graph["edges"] if (e["source"], e["target"]) == (source, target))


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
    # Generous deadlines: they bound a failure, they do not slow a pass (a loaded 2-core box).
    wait = 30.0
    async with (
        redis_through_a_link(redis_url) as (link, via_link),
        running_collector(
            via_link,
            # No publisher: its lock round would notice the cut on its own and could refuse the
            # 20 spans below before they are accepted (tested in the /health test instead).
            publisher=LivePublisherConfig(enabled=False),
        ) as collector,
    ):
        url = f"http://127.0.0.1:{collector.port}/v1/traces"
        assert (await ahttp("POST", url, root_spans("api", 10, 1), PB))[0] == 200
        await eventually(lambda: edge_requests(redis_url, "unknown", "api") == 10, wait)
        await eventually(lambda: not collector.exporter.writer.pending, wait)

        link.cut()
        # Nothing touches Redis until data is pending, so the collector cannot know it is
        # gone yet: these are accepted, and must not be lost.
        assert (await ahttp("POST", url, root_spans("api", 20, 11), PB))[0] == 200
        await eventually(lambda: collector.stats.redis_write_errors > 0, wait)
        assert collector.exporter.writer.pending_fields > 0
        status, headers, _ = await ahttp("POST", url, root_spans("api", 5, 31), PB)
        assert status == 503
        assert headers["retry-after"] == "1"
        assert collector.stats.refused == {"redis_unavailable": 1}
        assert collector.stats.refused_items[("traces", "redis_unavailable")] == 5

        link.restore()
        await eventually(lambda: edge_requests(redis_url, "unknown", "api") == 30, wait)
        await eventually(lambda: collector.stats.redis_available, wait)
        assert (await ahttp("POST", url, root_spans("api", 5, 31), PB))[0] == 200
        await eventually(lambda: edge_requests(redis_url, "unknown", "api") == 35, wait)
    assert edge_requests(redis_url, "unknown", "api") == 35
    assert collector.stats.received_spans == 35  # the refused 5 counted once, when accepted


async def test_a_flush_whose_reply_is_lost_after_redis_applied_it_is_retried_and_counted_once(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    wait = 30.0
    caplog.set_level(logging.INFO, logger="collector.graphwriter")
    async with (
        redis_through_a_link(redis_url) as (link, via_link),
        # No publisher: only the writer talks to Redis, so the next reply is the flush's.
        running_collector(via_link, publisher=LivePublisherConfig(enabled=False)) as collector,
    ):
        url = f"http://127.0.0.1:{collector.port}/v1/traces"
        assert (await ahttp("POST", url, root_spans("api", 10, 1), PB))[0] == 200
        await eventually(lambda: edge_requests(redis_url, "unknown", "api") == 10, wait)
        await eventually(lambda: not collector.exporter.writer.pending, wait)

        link.lose_next_reply()
        assert (await ahttp("POST", url, root_spans("api", 20, 11), PB))[0] == 200
        await eventually(lambda: link.replies_lost == 1, wait)
        await eventually(lambda: not collector.exporter.writer.pending, wait)
        assert collector.stats.redis_write_errors == 1
        assert "was applied before (its reply was lost)" in caplog.text  # the retry reached Redis
        assert edge_requests(redis_url, "unknown", "api") == 30
    assert edge_requests(redis_url, "unknown", "api") == 30


async def test_a_resent_batch_keeps_its_id_and_later_increments_go_into_the_next_batch(
    redis_url: str,
) -> None:
    now = 1_800_000_000
    requests_field = f"e{graphstore.SEP}web{graphstore.SEP}api{graphstore.SEP}n"
    direct = aredis.Redis.from_url(redis_url)
    async with redis_through_a_link(redis_url) as (link, via_link):
        client = redis_client(via_link)
        writer = graphwriter.GraphWriter(clock=FakeClock(now))
        try:
            writer.add_edge("web", "api", 1, 0, {})
            assert await writer.aflush(client) == 1  # loads the script, opens the connection

            writer.add_edge("web", "api", 2, 0, {})
            link.lose_next_reply()
            with pytest.raises(redis.ConnectionError):
                await writer.aflush(client)
            lost = writer.unconfirmed_batch
            assert lost is not None
            assert lost.increments == {now: {requests_field: 2}}
            assert await direct.hget(graphstore.key_for(now), requests_field) == b"3"  # applied
            assert 0 < await direct.ttl(lost.marker_key) <= graphwriter.FLUSH_MARKER_TTL

            writer.add_edge("web", "api", 4, 0, {})
            assert writer.unconfirmed_batch is lost  # the new increments did not join it
            assert writer.pending_fields == 2

            assert await writer.aflush(client) == 2  # the lost batch again, then a new one
            assert await direct.hget(graphstore.key_for(now), requests_field) == b"7"
            assert writer.unconfirmed_batch is None and not writer.pending
            markers = {key async for key in direct.scan_iter(f"{graphwriter.FLUSH_MARKER_PREFIX}*")}
            assert markers == {
                f"{graphwriter.FLUSH_MARKER_PREFIX}{writer.instance_id}:{n}".encode() for n in (1, 2, 3)
            }
        finally:
            await client.aclose()
            await direct.aclose()


async def test_health_shows_a_redis_outage_without_any_traffic(redis_url: str) -> None:
    async with redis_through_a_link(redis_url) as (link, via_link), running_collector(via_link) as collector:
        health = f"http://127.0.0.1:{collector.port}/health"
        assert (await ahttp("GET", health))[0] == 200

        link.cut()  # idle: no export will make the writer notice, the publisher's lock does
        status, _, body = await eventually(
            lambda: _degraded(ahttp("GET", health)), timeout=30.0, interval=0.1
        )
        report = orjson.loads(body)
        assert report["status"] == "degraded"
        assert [p.split(":")[0] for p in report["problems"]] == ["redis unreachable"]
        assert collector.stats.publish_errors > 0  # it was the publisher's round that noticed

        link.restore()
        status, _, body = await eventually(lambda: _healthy(ahttp("GET", health)), timeout=30.0, interval=0.1)
        assert orjson.loads(body)["status"] == "ok"


async def _degraded(response: Awaitable[Response]) -> Response | None:
    result = await response
    return result if result[0] == 503 else None


async def _healthy(response: Awaitable[Response]) -> Response | None:
    result = await response
    return result if result[0] == 200 else None


async def test_a_long_outage_refuses_exports_once_the_backlog_is_full(redis_url: str) -> None:
    async with running_collector(
        redis_url, redis_exporter=RedisExporterConfig(max_pending_fields=3)
    ) as collector:
        collector.stats.pending_fields = 4  # as if flushes kept failing with a backlog
        refusal = collector.refusal()
        assert refusal is not None and refusal.reason == "write_backlog_full"


async def test_shutdown_writes_waiting_client_spans_as_edges_to_their_peer(redis_url: str) -> None:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "web"
    spans = rs.scope_spans.add().spans
    for i, peer in ((1, "payments"), (2, "")):
        span = spans.add(
            trace_id=i.to_bytes(16, "big"),
            span_id=i.to_bytes(8, "big"),
            kind=3,
            start_time_unix_nano=1,
            end_time_unix_nano=2_000_001,
        )
        if peer:
            span.attributes.add(key="peer.service").value.string_value = peer
    async with running_collector(redis_url) as collector:  # pairing TTL 10 s: nothing expires
        url = f"http://127.0.0.1:{collector.port}/v1/traces"
        assert (await ahttp("POST", url, request.SerializeToString(), PB))[0] == 200
    # Flushed by the pairing connector before the writer's last flush.
    assert edge_requests(redis_url, "web", "payments") == 1
    assert collector.stats.dropped["pairing_shutdown"] == 1
    assert collector.stats.expired_unpaired == 0
