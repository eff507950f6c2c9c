"""Cardinality limits: 10,000 service names in one export stay bounded, counted and told."""

from __future__ import annotations

import orjson
import redis
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector import graphstore, graphwriter
from collector.cardinality import CardinalityConfig, CardinalityLimiter
from collector.publisher import LivePublisherConfig
from tests.clock import FakeClock
from tests.collector.otlp_build import sidecar_metrics, spans
from tests.collector.support import ahttp, running_collector
from tests.polling import eventually

PB = {"Content-Type": "application/x-protobuf"}


def test_the_limiter_admits_up_to_each_limit_all_or_nothing_and_resets_each_window() -> None:
    clock = FakeClock(600.0)
    limiter = CardinalityLimiter(
        CardinalityConfig(max_services=3, max_edges=1, max_series=4, window_s=60), clock
    )
    assert limiter.admit(("a", "b"), ("a", "b"), ["f1", "f2"]) is None
    assert limiter.admit(("c", "d")) == "services"  # 4 > 3: neither is admitted
    assert limiter.services == {"a", "b"}
    assert limiter.admit(("c",)) is None
    assert limiter.admit(("a", "c"), ("a", "c")) == "edges"
    assert limiter.admit(("a", "b"), ("a", "b"), ["f1", "f3", "f4", "f5"]) == "series"
    assert limiter.series == {"f1", "f2"}
    assert limiter.admit(("a", "b"), ("a", "b"), ["f3", "f4"]) is None  # known names pass freely
    assert limiter.in_window() == {"services": 3, "edges": 1, "series": 4}
    assert limiter.admit_series(["f1", "f4"]) is None  # a split's series: known ones pass
    assert limiter.admit_series(["f1", "f9"]) == "series"
    assert limiter.series == {"f1", "f2", "f3", "f4"}
    clock.now = 660.0  # the next window
    assert limiter.in_window() == {"services": 0, "edges": 0, "series": 0}
    assert limiter.admit(("x", "y"), ("x", "y")) is None


def test_the_writer_drops_an_update_past_a_limit_whole_and_counts_it() -> None:
    limiter = CardinalityLimiter(CardinalityConfig(max_edges=2, max_series=8), clock=FakeClock(0.0))
    writer = graphwriter.GraphWriter(clock=FakeClock(1000.0), limiter=limiter)
    for target in ("b", "c", "d"):
        writer.add_edge("a", target, 1, 0, {40: 1})
    writer.add_node("a", "v1", 5, 0, {40: 5, 41: 1, 42: 1, 43: 1})  # 7 new fields: past 8
    graph = graphstore.build_graph(writer.take().values(), 60, 1000.0)
    assert [(e["source"], e["target"]) for e in graph["edges"]] == [("a", "b"), ("a", "c")]
    assert limiter.dropped == {"edges": 1, "series": 1}
    assert [n["requests"] for n in graph["nodes"]] == [0, 0, 0]  # a's node update was dropped


def test_the_series_limit_drops_a_version_s_split_but_never_the_edge_s_requests() -> None:
    limiter = CardinalityLimiter(CardinalityConfig(max_edges=1, max_series=5), clock=FakeClock(0.0))
    writer = graphwriter.GraphWriter(clock=FakeClock(1000.0), limiter=limiter)
    writer.add_edge("a", "b", 3, 0, {40: 3}, version="v1")  # 2 edge + 2 version fields
    writer.add_edge("a", "b", 3, 0, {40: 3}, version="v2")  # v2's 2 new fields: past 5
    writer.add_edge("a", "c", 3, 0, {40: 3}, version="v1")  # a second edge: past 1
    increments = writer.take()
    (edge,) = graphstore.build_graph(increments.values(), 60, 1000.0)["edges"]
    assert (edge["target"], edge["requests"]) == ("b", 6)
    assert {version: entry["share"] for version, entry in edge["by_version"].items()} == {"v1": 0.5}
    # One drop each: the refused edge's split was not tried, so it counts no series drop.
    assert limiter.dropped == {"series": 1, "edges": 1}
    assert not [name for fields in increments.values() for name in fields if "\x1fc\x1f" in name]


def test_the_graph_read_keeps_the_busiest_nodes_and_says_what_it_hid() -> None:
    writer = graphwriter.GraphWriter(clock=FakeClock(1000.0))
    for i in range(250):
        writer.add_node(f"svc-{i:03}", "", i + 1, 0, {})
        writer.add_edge("loadgen", f"svc-{i:03}", i + 1, 0, {})
    hashes = list(writer.take().values())
    graph = graphstore.build_graph(hashes, 60, 1000.0, max_nodes=10)
    names = [n["id"] for n in graph["nodes"]]
    # loadgen serves nothing but sends everything: it is the busiest and is kept.
    assert names == ["loadgen", *(f"svc-{i}" for i in range(241, 250))]
    assert len(graph["edges"]) == 9
    assert graph["hidden"] == {"nodes": 241, "edges": 241}
    assert graphstore.build_graph(hashes, 60, 1000.0, max_nodes=1000)["hidden"] == {"nodes": 0, "edges": 0}


def ten_thousand_services() -> bytes:
    request = ExportTraceServiceRequest()
    for i in range(10_000):
        request.resource_spans.extend(spans(f"svc-{i:05}", [{"trace": i + 1, "span": i + 1}]).resource_spans)
    return request.SerializeToString()


async def test_an_export_with_ten_thousand_service_names_is_bounded_counted_and_told(redis_url: str) -> None:
    body = ten_thousand_services()
    assert len(body) < 1_000_000
    async with running_collector(redis_url, publisher=LivePublisherConfig(enabled=False)) as collector:
        collector.limiter.clock = FakeClock(1000.0)  # one window throughout, whenever the test runs
        base = f"http://127.0.0.1:{collector.port}"
        status, _, response = await ahttp("POST", f"{base}/v1/traces", body, PB)
        assert status == 200
        partial = ExportTraceServiceResponse.FromString(response).partial_success
        # 1,000 services per window: "unknown" (the callers of root spans) and 999 of them.
        assert partial.rejected_spans == 9_001
        assert "services limit reached" in partial.error_message
        await eventually(lambda: collector.stats.redis_fields_written >= 4 * 999, 30.0)

        health = orjson.loads((await ahttp("GET", f"{base}/health"))[2])
        assert health["cardinality"]["rejected"] == {"services": 9_001, "edges": 0, "series": 0}
        assert health["cardinality"]["in_window"]["services"] == 1_000
        assert health["rejected_spans"] == 9_001
        metrics = (await ahttp("GET", f"{base}/metrics"))[2].decode()
        assert 'meshui_collector_cardinality_rejected_total{limit="services"} 9001' in metrics
        assert 'meshui_collector_cardinality_limit{kind="services"} 1000' in metrics

    client = redis.Redis.from_url(redis_url)
    try:
        graph = graphstore.fetch_graph(client, 300)
    finally:
        client.close()
    assert len(graph["nodes"]) == 100
    assert graph["hidden"] == {"nodes": 900, "edges": 900}
    assert len(orjson.dumps(graph)) < 64 * 1024  # the page stays small (it was 13 MB)


async def test_metric_points_naming_too_many_services_are_rejected_with_a_partial_success(
    redis_url: str,
) -> None:
    points = [{"count": 1, "attributes": {"destination.service": f"api-{i}"}} for i in range(20)]
    async with running_collector(
        redis_url,
        publisher=LivePublisherConfig(enabled=False),
        cardinality=CardinalityConfig(max_services=6, max_edges=3),
    ) as collector:
        url = f"http://127.0.0.1:{collector.port}/v1/metrics"
        status, _, _ = await ahttp("POST", url, sidecar_metrics(points).SerializeToString(), PB)
        assert status == 200
        # web plus 3 destinations, then the edge limit stops the 4th edge.
        assert collector.limiter.rejected == {"edges": 17}
        assert collector.stats.rejected_points == 17
