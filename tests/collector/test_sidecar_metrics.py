"""Sidecar request histograms -> edges and nodes (docs/telemetry.md), delta and cumulative."""

from __future__ import annotations

from typing import Any

from collector import graphstore, graphwriter
from collector.otlp_metrics import explicit_latency, exponential_latency
from collector.records import MetricBatch, SidecarPoint
from collector.sidecar_metrics import SidecarMetricsConnector
from proxies.telemetry import histogram
from tests.clock import FakeClock


def point(
    direction: str = "outbound",
    source: str = "web",
    destination: str = "api",
    status: int = 200,
    source_sidecar: bool = True,
    count: int = 3,
    latency: dict[int, int] | None = None,
    temporality: int = 1,
    start_ns: int = 10,
    time_ns: int = 20,
    version: str = "v1",
) -> SidecarPoint:
    return SidecarPoint(
        ("web", "w-1", "exp", (direction, status)),
        direction,
        source,
        destination,
        version,
        status,
        source_sidecar,
        temporality,
        start_ns,
        time_ns,
        count,
        latency if latency is not None else {40: count},
    )


def run(
    *points: SidecarPoint, connector: SidecarMetricsConnector | None = None
) -> tuple[dict[Any, Any], dict[Any, Any]]:
    writer = graphwriter.GraphWriter(clock=FakeClock(1000.0))
    connector = connector or SidecarMetricsConnector(writer, started_ns=0)
    connector.sink = writer
    connector.consume(MetricBatch(list(points), len(points)))
    graph = graphstore.build_graph(writer.take().values(), 60, 1000.0)
    return (
        {(e["source"], e["target"]): (e["requests"], e["errors"]) for e in graph["edges"]},
        {n["id"]: (n["requests"], n["errors"], n["versions"]) for n in graph["nodes"]},
    )


def test_an_outbound_point_is_an_edge_with_5xx_as_errors() -> None:
    edges, nodes = run(point(count=4), point(status=503, count=2))
    assert edges == {("web", "api"): (6, 2)}
    assert nodes["api"] == (0, 0, [])


def test_an_inbound_point_is_node_stats_of_the_destination_and_its_version() -> None:
    edges, nodes = run(point("inbound", destination="api", version="v2", count=5))
    assert edges == {}
    assert nodes["api"] == (5, 0, ["v2"])


def test_an_inbound_point_from_outside_the_mesh_is_also_an_edge_from_its_source() -> None:
    edges, nodes = run(point("inbound", source="unknown", destination="front", source_sidecar=False, count=7))
    assert edges == {("unknown", "front"): (7, 0)}
    assert nodes["front"][0] == 7


def test_an_edge_is_split_by_the_version_that_answered_and_calls_none_answered_stay_out() -> None:
    writer = graphwriter.GraphWriter(clock=FakeClock(1000.0))
    SidecarMetricsConnector(writer, started_ns=0).consume(MetricBatch([
        point(count=6, version="v1"), point(count=3, version="v2"), point(status=503, count=1, version=""),
        point("inbound", "unknown", "web", source_sidecar=False, count=4, version="v3"),
        point("inbound", "web", "api", count=9, version="v1"),  # the outbound side counted it
    ], 5))
    graph = graphstore.build_graph(writer.take().values(), 60, 1000.0)
    split = {(e["source"], e["target"]): {v: (s["requests"], s["share"]) for v, s in e["by_version"].items()}
             for e in graph["edges"]}
    assert split == {("web", "api"): {"v1": (6, 0.6), "v2": (3, 0.3)}, ("unknown", "web"): {"v3": (4, 1.0)}}


def test_buckets_of_any_scale_map_onto_ours_and_zeros_go_to_the_lowest_bucket() -> None:
    assert exponential_latency(3, 2, 0, 40, [1, 0, 4]) == {histogram.MIN_INDEX: 2, 40: 1, 42: 4}
    # Scale 5 is 4x finer: indexes 160..163 are our 40.
    assert exponential_latency(5, 0, 0, 160, [1, 1, 1, 1]) == {40: 4}
    # Scale 0 bucket 5 is (32, 64] ms, counted at its geometric midpoint ~45 ms.
    assert exponential_latency(0, 0, 0, 5, [2]) == {histogram.bucket_index(2**5.5): 2}
    # Scale -2 (coarse) and a negative offset still land inside our range.
    assert all(
        histogram.MIN_INDEX <= i <= histogram.MAX_INDEX
        for i in exponential_latency(-2, 0, 0, -3, [1, 1, 1, 1, 1])
    )


def test_explicit_buckets_are_counted_at_their_midpoints() -> None:
    latency = explicit_latency([10.0, 20.0], [1, 2, 3])
    assert latency == {
        histogram.bucket_index(10.0): 1,
        histogram.bucket_index(15.0): 2,
        histogram.bucket_index(20.0): 3,
    }


def test_cumulative_points_add_the_difference_and_detect_resets() -> None:
    writer = graphwriter.GraphWriter(clock=FakeClock(1000.0))
    connector = SidecarMetricsConnector(writer, started_ns=5)
    cumulative = {"temporality": 2, "start_ns": 10}
    assert run(point(count=3, time_ns=20, **cumulative), connector=connector)[0] == {
        ("web", "api"): (3, 0)
    }  # the stream started after us: counted in full
    assert run(point(count=8, time_ns=30, **cumulative), connector=connector)[0] == {("web", "api"): (5, 0)}
    assert run(point(count=8, time_ns=30, **cumulative), connector=connector)[0] == {}
    # The sidecar restarted: a new start time, the count starts again.
    assert run(point(count=2, time_ns=50, temporality=2, start_ns=40), connector=connector)[0] == {
        ("web", "api"): (2, 0)
    }


def test_a_cumulative_stream_older_than_the_collector_is_not_counted_on_first_sight() -> None:
    writer = graphwriter.GraphWriter(clock=FakeClock(1000.0))
    connector = SidecarMetricsConnector(writer, started_ns=1_000)
    assert run(point(count=50, temporality=2, start_ns=10), connector=connector)[0] == {}
    assert connector.stats.dropped["cumulative_first_point"] == 1
    assert run(point(count=52, temporality=2, start_ns=10, time_ns=40), connector=connector)[0] == {
        ("web", "api"): (2, 0)
    }


def test_policy_counters_add_up_in_their_edges_events_and_unknown_event_names_are_ignored() -> None:
    writer = graphwriter.GraphWriter(clock=FakeClock(1000.0))
    writer.add_edge_counter("web", "api", "retries", 2)
    writer.add_edge_counter("web", "api", "retries", 1)
    writer.add_edge_counter("web", "api", "teleports", 5)  # a name this reader does not know

    graph = graphstore.build_graph(writer.take().values(), 60, 1000.0)

    assert [(e["source"], e["target"], e["requests"], e["events"]) for e in graph["edges"]] == [
        (
            "web",
            "api",
            0,
            {
                "retries": 3,
                "ejections": 0,
                "overflows": 0,
                "timeouts": 0,
                "faults": 0,
                "rate_limited": 0,
                "retry_budget_exhausted": 0,
                "mtls": 0,
                "denied": 0,
                "audit_denied": 0,
            },
        ),
    ]
