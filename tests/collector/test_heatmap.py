"""Latency heatmaps read from the graph store: exact against the graph, aligned columns."""

from __future__ import annotations

from typing import Any

import pytest

from collector import seriesstore
from collector.graphstore import build_graph, key_for
from collector.graphwriter import GraphWriter
from collector.heatmap import (
    ROW_MERGE,
    build_heatmap,
    edge_series,
    read_plan,
    service_series,
    validate_step,
    window_range,
)
from collector.records import Exemplar
from proxies.telemetry import histogram

NOW = 1_800_000_017.5  # 17 s past a multiple of 10
TRACE = "ab" * 16


class Stored:
    """What a flush of the writer leaves in Redis, as plain dicts (graph, series, exemplars)."""

    def __init__(self, writer: GraphWriter) -> None:
        increments = writer.take()
        self.keys: dict[str, dict[bytes, bytes]] = {}
        for key, fields in [(key_for(second), f) for second, f in increments.items()] + list(
                seriesstore.series_increments(increments).items()):
            self.keys[key] = {name.encode(): str(value).encode() for name, value in fields.items()}
        for key, texts in writer.take_exemplars().items():
            self.keys[key] = {name.encode(): text.encode() for name, text in texts.items()}

    def graph(self, window: int, now: float = NOW) -> Any:
        seconds = window_range(window, 1, now)
        return build_graph([self.keys.get(key_for(s), {}) for s in seconds], window, now)

    def heatmap(self, series: str, window: int, step: int, now: float = NOW) -> Any:
        seconds = window_range(window, step, now)
        plan = read_plan(series, seconds, step)
        replies = [self.keys.get(key, {}) for key in
                   plan.s1_keys + plan.s10_keys + plan.exemplar_keys]
        counts, found = seriesstore.split_replies(plan, replies, with_exemplars=True)
        return build_heatmap(counts, found, seconds, step)


def stored(traffic: dict[int, list[tuple[float, int]]], exemplars: bool = False) -> Stored:
    """The keys a collector would have written: (latency ms, count) per second."""
    clock = {"now": 0.0}
    writer = GraphWriter(clock=lambda: clock["now"])
    for second, calls in traffic.items():
        clock["now"] = second + 0.5
        for value, count in calls:
            index = histogram.bucket_index(value)
            latency = {index: count}
            errors = count if value > 500 else 0
            found = [(index, Exemplar(TRACE, f"{second:016x}", value, second + 0.4, errors > 0))
                     ] if exemplars else []
            writer.add_edge("frontend", "catalog", count, errors, latency, version="v2",
                            exemplars=found)
            writer.add_node("catalog", "v2", count, errors, latency, instance="catalog-1",
                            exemplars=found)
    return Stored(writer)


@pytest.mark.parametrize(("window", "step"), [(60, 10), (60, 1), (60, 7), (3600, 10), (3600, 60),
                                            (45, 30)])
def test_the_counts_over_the_window_are_the_graphs_requests_exactly(window: int, step: int) -> None:
    seconds = window_range(window, step, NOW)
    traffic = {s: [(4.0, 3), (850.0, 1)] for s in seconds[::7]}
    traffic[seconds[0]] = [(20.0, 5)]  # the first second of the window counts
    traffic[seconds[0] - 1] = [(20.0, 100)]  # the second before it does not
    store = stored(traffic)
    graph = store.graph(window)
    (edge,) = graph["edges"]
    node = next(n for n in graph["nodes"] if n["id"] == "catalog")
    for series, expected, errors in (
            (edge_series("frontend", "catalog"), edge["requests"], edge["errors"]),
            (edge_series("frontend", "catalog", "v2"), edge["by_version"]["v2"]["requests"],
             edge["by_version"]["v2"]["errors"]),
            (service_series("catalog"), node["requests"], node["errors"]),
            (service_series("catalog", version="v2"), node["requests"], node["errors"]),
            (service_series("catalog", instance="catalog-1"), node["requests"], node["errors"])):
        heatmap = store.heatmap(series, window, step)
        assert sum(sum(c["counts"]) for c in heatmap["columns"]) == expected
        assert sum(c["requests"] for c in heatmap["columns"]) == expected
        assert sum(c["errors"] for c in heatmap["columns"]) == errors


def test_columns_align_to_the_step_and_the_slow_call_sits_in_its_row() -> None:
    last_second = int(NOW)
    heatmap = stored({last_second: [(4.0, 3), (850.0, 1)]}).heatmap(
        edge_series("frontend", "catalog"), 60, 10)
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
    heatmap = stored({}).heatmap(service_series("catalog"), 30, 10)
    assert heatmap["buckets_ms"] == [] and heatmap["top_ms"] is None
    assert [c["counts"] for c in heatmap["columns"]] == [[]] * 4
    assert all(c["p50_ms"] is None for c in heatmap["columns"])
    assert heatmap["exemplars"] == []


def test_a_series_never_reads_another_whose_name_starts_the_same() -> None:
    store = stored({int(NOW): [(4.0, 2)]})
    assert sum(c["requests"] for c in store.heatmap(service_series("cat"), 10, 10)["columns"]) == 0


def test_the_slow_cell_has_an_exemplar_and_an_error_wins_its_cell() -> None:
    second = int(NOW) - 3
    store = stored({second: [(4.0, 3), (850.0, 1)]}, exemplars=True)
    heatmap = store.heatmap(edge_series("frontend", "catalog"), 60, 10)
    by_row = {e["bucket"]: e for e in heatmap["exemplars"]}
    rows = heatmap["buckets_ms"]
    slow = by_row[max(i for i, low in enumerate(rows) if low < 850.0)]
    assert slow["error"] is True and slow["value_ms"] == 850.0 and slow["trace_id"] == TRACE
    column = heatmap["columns"][slow["column"]]
    assert column["start"] <= second < column["start"] + 10
    assert column["counts"][slow["bucket"]] == 1

    # In one cell, an error's exemplar is kept over a later success's.
    clock = {"now": second + 0.5}
    writer = GraphWriter(clock=lambda: clock["now"])
    bucket = histogram.bucket_index(850.0)
    for error, span in ((True, "1" * 16), (False, "2" * 16)):
        writer.add_edge("frontend", "catalog", 1, int(error), {bucket: 1},
                        exemplars=[(bucket, Exemplar(TRACE, span, 850.0, second, error))])
    (exemplar,) = Stored(writer).heatmap(edge_series("frontend", "catalog"), 60, 10)["exemplars"]
    assert exemplar["span_id"] == "1" * 16


@pytest.mark.parametrize("step", [1, 5, 7, 15])
@pytest.mark.parametrize("offset", [0, 4, 6, 9])
def test_with_columns_that_split_a_cell_the_exemplar_sits_where_its_request_is_counted(
        step: int, offset: int) -> None:
    """Exemplars are kept per 10 s cell: in a narrower (or unaligned) column, the one cell
    spans several, and the exemplar goes to the column that counted its slow request."""
    second = int(NOW) - 40 - (int(NOW) - 40) % 10 + offset
    traffic = {s: [(4.0, 2)] for s in range(second - offset, second - offset + 10)}
    traffic[second] = [(4.0, 2), (850.0, 1)]
    heatmap = stored(traffic, exemplars=True).heatmap(edge_series("frontend", "catalog"), 60, step)
    rows = heatmap["buckets_ms"]
    slow_row = max(i for i, low in enumerate(rows) if low < 850.0)
    (slow,) = [e for e in heatmap["exemplars"] if e["bucket"] == slow_row]
    column = heatmap["columns"][slow["column"]]
    assert column["start"] <= second < column["start"] + step
    assert column["counts"][slow_row] == 1


def test_a_long_window_at_ten_second_steps_reads_a_few_small_keys() -> None:
    seconds = window_range(3600, 10, NOW)
    plan = read_plan(edge_series("frontend", "catalog"), seconds, 10)
    assert len(plan.s10_keys) <= 7 and len(plan.s1_keys) <= 2


@pytest.mark.parametrize(("step", "window", "problem"), [
    (0, 60, "between 1 and 60"), (61, 3600, "between 1 and 60"), (30, 10, "not be longer")])
def test_a_bad_step_says_why(step: int, window: int, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        validate_step(step, window)
