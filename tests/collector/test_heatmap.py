"""Latency heatmaps read from the graph store: exact against the graph, aligned columns."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from collector.graphstore import build_graph
from collector.graphwriter import GraphWriter
from collector.heatmap import (
    ROW_MERGE,
    build_heatmap,
    edge_series,
    service_series,
    validate_step,
    window_seconds,
)
from proxies.telemetry import histogram

NOW = 1_800_000_017.5  # 17 s past a multiple of 10


def hashes_for(seconds: list[int], traffic: dict[int, list[tuple[float, int]]]
               ) -> list[dict[str, Any]]:
    """The per-second hashes a collector would have written: (latency ms, count) per second."""
    clock = {"now": 0.0}
    writer = GraphWriter(clock=lambda: clock["now"])
    for second, calls in traffic.items():
        clock["now"] = second + 0.5
        for value, count in calls:
            latency = {histogram.bucket_index(value): count}
            errors = count if value > 500 else 0
            writer.add_edge("frontend", "catalog", count, errors, latency, version="v2")
            writer.add_node("catalog", "v2", count, errors, latency)
    written: dict[int, dict[str, int]] = defaultdict(dict, writer.take())
    return [{name.encode(): str(value).encode() for name, value in written[s].items()}
            for s in seconds]


def test_the_counts_over_the_window_are_the_graphs_requests_exactly() -> None:
    seconds = window_seconds(60, NOW)
    traffic = {s: [(4.0, 3), (850.0, 1)] for s in seconds[::7]}
    traffic[seconds[0]] = [(20.0, 5)]  # the first second of the window counts
    hashes = hashes_for(seconds, traffic)
    graph = build_graph(hashes, 60, NOW)
    (edge,) = graph["edges"]
    node = next(n for n in graph["nodes"] if n["id"] == "catalog")
    for series, expected in ((edge_series("frontend", "catalog"), edge["requests"]),
                             (edge_series("frontend", "catalog", "v2"),
                              edge["by_version"]["v2"]["requests"]),
                             (service_series("catalog"), node["requests"])):
        heatmap = build_heatmap(hashes, seconds, series, 60, 10)
        assert sum(sum(c["counts"]) for c in heatmap["columns"]) == expected
        assert sum(c["requests"] for c in heatmap["columns"]) == expected
        assert sum(c["errors"] for c in heatmap["columns"]) == (
            edge["errors"] if series.startswith("e") else node["errors"])


def test_columns_align_to_the_step_and_the_slow_call_sits_in_its_row() -> None:
    seconds = window_seconds(60, NOW)
    hashes = hashes_for(seconds, {seconds[-1]: [(4.0, 3), (850.0, 1)]})
    heatmap = build_heatmap(hashes, seconds, edge_series("frontend", "catalog"), 60, 10)
    starts = [c["start"] for c in heatmap["columns"]]
    # 60 s ending 17 s past a ten: 7 columns, the first and last partial, all on tens.
    assert starts == list(range(int(NOW) // 10 * 10 - 60, int(NOW) // 10 * 10 + 1, 10))
    last = heatmap["columns"][-1]
    assert last["requests"] == 4 and last["p99_ms"] is not None and last["p99_ms"] > 500
    rows = heatmap["buckets_ms"]
    assert rows == sorted(rows) and heatmap["top_ms"] > rows[-1]
    for value, count in ((4.0, 3), (850.0, 1)):
        row = max(i for i, low in enumerate(rows) if low < value)
        assert last["counts"][row] == count
    # Each row spans ROW_MERGE sidecar buckets: a factor of 2 ** (ROW_MERGE / 8).
    assert rows[1] / rows[0] == pytest.approx(2 ** (ROW_MERGE / 8), rel=1e-3)  # 4 places
    assert all(sum(c["counts"]) == 0 for c in heatmap["columns"][:-1])


def test_an_idle_series_has_no_rows_and_empty_columns() -> None:
    seconds = window_seconds(30, NOW)
    heatmap = build_heatmap(hashes_for(seconds, {}), seconds, service_series("catalog"), 30, 10)
    assert heatmap["buckets_ms"] == [] and heatmap["top_ms"] is None
    assert [c["counts"] for c in heatmap["columns"]] == [[]] * 4
    assert all(c["p50_ms"] is None for c in heatmap["columns"])


def test_a_series_never_reads_another_whose_name_starts_the_same() -> None:
    seconds = window_seconds(10, NOW)
    hashes = hashes_for(seconds, {seconds[-1]: [(4.0, 2)]})
    assert sum(c["requests"] for c in build_heatmap(
        hashes, seconds, service_series("cat"), 10, 10)["columns"]) == 0


@pytest.mark.parametrize(("step", "window", "problem"), [
    (0, 60, "between 1 and 60"), (61, 3600, "between 1 and 60"), (30, 10, "not be longer")])
def test_a_bad_step_says_why(step: int, window: int, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        validate_step(step, window)
