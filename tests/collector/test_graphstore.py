"""Reading the graph: an edge's split between its target's versions (``by_version``)."""

from __future__ import annotations

from collections import Counter

from collector import graphstore, graphwriter
from collector.graphstore import SEP
from proxies.telemetry import histogram
from tests.clock import FakeClock

NOW = 1000.0


def latency(*ms: float) -> dict[int, int]:
    return dict(Counter(histogram.bucket_index(value) for value in ms))


def q(buckets: dict[int, int], p: float) -> float:
    value = histogram.quantile(buckets, p)
    assert value is not None
    return round(value, 3)


def split_edge(writer: graphwriter.GraphWriter, clock: FakeClock) -> None:
    """frontend -> catalog over 3 s: v1 80 fast calls, v2 20 slow ones (4 failed), 10 with no version."""
    clock.now = NOW - 2
    writer.add_edge("frontend", "catalog", 10, 4, latency(*[100.0] * 10), version="v2")  # v2 first: order
    writer.add_edge("frontend", "catalog", 40, 0, latency(*[10.0] * 40), version="v1")
    clock.now = NOW - 1
    writer.add_edge("frontend", "catalog", 10, 0, latency(*[120.0] * 10), version="v2")
    writer.add_edge("frontend", "catalog", 10, 10, latency(*[1.0] * 10))  # no instance answered
    clock.now = NOW
    writer.add_edge("frontend", "catalog", 40, 0, latency(*[12.0] * 40), version="v1")


def test_each_version_has_its_requests_share_and_own_quantiles_in_version_order() -> None:
    clock = FakeClock(NOW)
    writer = graphwriter.GraphWriter(clock=clock)
    split_edge(writer, clock)
    graph = graphstore.build_graph(writer.take().values(), 60, NOW)

    (edge,) = graph["edges"]
    assert (edge["requests"], edge["errors"]) == (110, 14)  # the unversioned calls count here
    assert list(edge["by_version"]) == ["v1", "v2"]
    v1, v2 = edge["by_version"]["v1"], edge["by_version"]["v2"]
    v1_latency, v2_latency = latency(*[10.0] * 40, *[12.0] * 40), latency(*[100.0] * 10, *[120.0] * 10)
    assert v1 == {"requests": 80, "errors": 0, "rps": 1.333, "share": 0.7273,
                  "p50_ms": q(v1_latency, 0.5), "p95_ms": q(v1_latency, 0.95),
                  "p99_ms": q(v1_latency, 0.99)}
    assert v2 == {"requests": 20, "errors": 4, "rps": 0.333, "share": 0.1818,
                  "p50_ms": q(v2_latency, 0.5), "p95_ms": q(v2_latency, 0.95),
                  "p99_ms": q(v2_latency, 0.99)}
    # Each version's latency is its own, not the edge's: v1 is fast, v2 slow.
    assert v1["p99_ms"] is not None and v1["p99_ms"] < 13 < 95 < (v2["p50_ms"] or 0)
    assert edge["p50_ms"] not in (v1["p50_ms"], v2["p50_ms"])
    # Requests with no version are in no entry, so the shares add up to less than 1.
    assert round(v1["share"] + v2["share"], 4) == round(100 / 110, 4)


def test_the_split_covers_the_window_only() -> None:
    clock = FakeClock(NOW)
    writer = graphwriter.GraphWriter(clock=clock)
    split_edge(writer, clock)
    hashes = writer.take()
    last_second = graphstore.build_graph([hashes[int(NOW)]], 1, NOW)
    (edge,) = last_second["edges"]
    assert edge["requests"] == 40
    assert edge["by_version"] == {"v1": {
        "requests": 40, "errors": 0, "rps": 40.0, "share": 1.0,
        "p50_ms": q(latency(12.0), 0.5), "p95_ms": q(latency(12.0), 0.95),
        "p99_ms": q(latency(12.0), 0.99)}}


def test_an_edge_without_versioned_calls_has_an_empty_split() -> None:
    writer = graphwriter.GraphWriter(clock=FakeClock(NOW))
    writer.add_edge("web", "api", 5, 0, latency(3.0))
    writer.add_edge("web", "api", 5, 0, latency(3.0), version="")
    writer.add_edge_counter("web", "ratings", "retries", 2)  # known only by its events
    graph = graphstore.build_graph(writer.take().values(), 60, NOW)
    assert [(e["target"], e["requests"], e["by_version"]) for e in graph["edges"]] == [
        ("api", 10, {}), ("ratings", 0, {})]


def test_a_version_field_not_written_by_a_collector_cannot_break_the_split() -> None:
    e, ev = f"e{SEP}web{SEP}api{SEP}", f"ev{SEP}web{SEP}api{SEP}"
    hashes = [{
        f"{e}n": "4", f"{ev}v1{SEP}n": "9",  # more than its edge: the share stays at most 1
        f"{ev}v2{SEP}n": "not a number", f"{ev}v3": "2", f"{ev}v4{SEP}n{SEP}x": "2",
        f"{ev}v5{SEP}n".encode(): b"1",  # as bytes, the way redis-py answers
        f"{ev}v5{SEP}hx": "3", f"{ev}v5{SEP}h99999": "3", f"{e}h-99999": "1",  # no such bucket
    }]
    (edge,) = graphstore.build_graph(hashes, 60, NOW)["edges"]
    assert edge["requests"] == 4
    assert {version: entry["share"] for version, entry in edge["by_version"].items()} == {
        "v1": 1.0, "v5": 0.25}
    assert edge["by_version"]["v1"]["p50_ms"] is None  # no histogram: no quantile
    assert (edge["p50_ms"], edge["by_version"]["v5"]["p50_ms"]) == (None, None)


def test_the_split_of_an_idle_edge_has_zero_shares() -> None:
    # Only errors counted, no requests field (a clipped or foreign write): no division by 0.
    hashes = [{f"e{SEP}web{SEP}api{SEP}x": "1", f"ev{SEP}web{SEP}api{SEP}v1{SEP}x": "1"}]
    (edge,) = graphstore.build_graph(hashes, 60, NOW)["edges"]
    assert edge["by_version"]["v1"]["share"] == 0.0
