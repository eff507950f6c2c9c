"""Golden metrics over time: effective vs actual rates, events per scope, server vs network."""

from __future__ import annotations

from typing import Any

import pytest

from collector import seriesstore
from collector.graphwriter import GraphWriter
from collector.heatmap import window_range
from collector.series import (
    DEFAULT_METRICS,
    METRICS,
    Scope,
    build_series,
    plans,
    split_replies,
    validate_metrics,
)
from proxies.telemetry import histogram

NOW = 1_800_000_019.5  # 19 s past a multiple of 10: the last column holds 10 s
WINDOW, STEP = 60, 10


class Stored:
    """The series keys a flush of the writer leaves in Redis, as plain dicts."""

    def __init__(self, writer: GraphWriter) -> None:
        self.keys = {key: {name.encode(): str(value).encode() for name, value in fields.items()}
                     for key, fields in seriesstore.series_increments(writer.take()).items()}

    def read(self, scope: Scope, metrics: tuple[str, ...] = METRICS, window: int = WINDOW,
             step: int = STEP) -> dict[str, Any]:
        """What fetch_series returns, as metric -> values (and times)."""
        seconds = window_range(window, step, NOW)
        read_plans = plans(scope, seconds, step)
        replies = [self.keys.get(key, {}) for plan in read_plans
                   for key in plan.s1_keys + plan.s10_keys]
        series = build_series(scope, split_replies(read_plans, replies), seconds, step, metrics)
        return {"times": series["times"],
                **{line["metric"]: line["values"] for line in series["series"]}}


def read(writer: GraphWriter, scope: Scope, metrics: tuple[str, ...] = METRICS) -> dict[str, Any]:
    return Stored(writer).read(scope, metrics)


def at(second: int, writer_clock: dict[str, float]) -> None:
    writer_clock["now"] = second + 0.5


@pytest.fixture
def clock() -> dict[str, float]:
    return {"now": 0.0}


@pytest.fixture
def writer(clock: dict[str, float]) -> GraphWriter:
    return GraphWriter(clock=lambda: clock["now"])


def last_column_second(offset: int = 0) -> int:
    return int(NOW) - int(NOW) % STEP + offset


def test_effective_and_actual_rates_count_retries_as_failed_tries(
        writer: GraphWriter, clock: dict[str, float]) -> None:
    at(last_column_second(2), clock)
    # 100 requests as the app saw them, 4 of them failed in the end; 10 retries went out.
    writer.add_edge("frontend", "catalog", 100, 4, {histogram.bucket_index(5.0): 100})
    writer.add_edge_counter("frontend", "catalog", "retries", 10, "frontend", "frontend-1")
    writer.add_edge_counter("frontend", "catalog", "timeouts", 3, "frontend", "frontend-1")
    series = read(writer, Scope.edge("frontend", "catalog"))
    assert series["times"] == list(range(int(NOW) - 59 - (int(NOW) - 59) % 10, int(NOW) + 1, 10))
    assert series["rps"][-1] == 10.0  # 100 requests in 10 s
    assert series["actual_rps"][-1] == 11.0  # 110 tries
    assert series["success_rate"][-1] == 0.96
    assert series["error_rate"][-1] == 0.04
    assert series["actual_success_rate"][-1] == round(96 / 110, 4)
    assert series["retries"][-1] == 1.0 and series["timeouts"][-1] == 0.3
    assert series["ejections"][-1] == 0.0
    # An empty column: no rate of nothing, but zero requests per second.
    assert series["rps"][0] == 0.0 and series["success_rate"][0] is None
    assert series["p50"][0] is None
    assert series["p50"][-1] == pytest.approx(5.0, rel=0.1)


def test_a_service_has_the_events_of_the_calls_into_it_and_an_instance_its_own(
        writer: GraphWriter, clock: dict[str, float]) -> None:
    at(last_column_second(1), clock)
    writer.add_node("catalog", "v1", 20, 0, {histogram.bucket_index(3.0): 20}, instance="catalog-a")
    writer.add_edge_counter("frontend", "catalog", "retries", 5, "frontend", "frontend-1")
    writer.add_edge_counter("checkout", "catalog", "retries", 5, "checkout", "checkout-1")
    writer.add_edge_counter("web", "catalog", "rate_limited", 2, "catalog", "catalog-a")
    stored = Stored(writer)
    service = stored.read(Scope.service("catalog"))
    assert service["rps"][-1] == 2.0
    assert service["retries"][-1] == 1.0  # both callers' retries to catalog
    assert service["rate_limited"][-1] == 0.2
    assert service["actual_rps"][-1] == 3.0
    instance = stored.read(Scope.service("catalog", instance="catalog-a"))
    assert instance["rps"][-1] == 2.0
    assert instance["rate_limited"][-1] == 0.2  # counted by catalog-a's own sidecar
    assert instance["retries"][-1] == 0.0  # the callers' retries are their sidecars' events
    assert stored.read(Scope.service("frontend", instance="frontend-1"))["retries"][-1] == 0.5


def test_a_version_has_no_event_counts_rather_than_false_zeros(
        writer: GraphWriter, clock: dict[str, float]) -> None:
    at(last_column_second(), clock)
    writer.add_node("catalog", "v2", 10, 1, {histogram.bucket_index(3.0): 10})
    writer.add_edge_counter("frontend", "catalog", "retries", 5, "frontend", "frontend-1")
    series = read(writer, Scope.service("catalog", version="v2"))
    assert series["rps"][-1] == 1.0
    assert series["retries"] == [None] * len(series["times"])
    assert series["actual_rps"][-1] == 1.0  # no retries known: the effective rate
    assert series["server_p50"] == [None] * len(series["times"])


def test_an_edge_splits_its_latency_into_server_and_network(
        writer: GraphWriter, clock: dict[str, float]) -> None:
    at(last_column_second(3), clock)
    writer.add_edge("frontend", "catalog", 50, 0, {histogram.bucket_index(40.0): 50})
    writer.add_edge_served("frontend", "catalog", 50, 0, {histogram.bucket_index(30.0): 50})
    series = read(writer, Scope.edge("frontend", "catalog"))
    assert series["p50"][-1] == pytest.approx(40.0, rel=0.1)
    assert series["server_p50"][-1] == pytest.approx(30.0, rel=0.1)
    assert series["network_p50"][-1] == pytest.approx(
        series["p50"][-1] - series["server_p50"][-1], abs=0.001)
    assert series["network_p99"][-1] >= 0


def test_the_rates_over_the_window_add_up_to_the_requests(
        writer: GraphWriter, clock: dict[str, float]) -> None:
    seconds = window_range(WINDOW, STEP, NOW)
    for second in seconds[::3]:
        at(second, clock)
        writer.add_edge("frontend", "catalog", 7, 0, {histogram.bucket_index(2.0): 7})
    at(seconds[0] - 1, clock)  # before the window: not counted
    writer.add_edge("frontend", "catalog", 1000, 0, {histogram.bucket_index(2.0): 1000})
    series = read(writer, Scope.edge("frontend", "catalog"), ("rps",))
    assert sum(value * STEP for value in series["rps"]) == pytest.approx(7 * len(seconds[::3]))


def test_metric_names_are_checked() -> None:
    assert validate_metrics(None) == DEFAULT_METRICS
    assert validate_metrics("p99, rps,p99") == ("p99", "rps")
    with pytest.raises(ValueError, match="unknown metric 'p42'"):
        validate_metrics("rps,p42")
    with pytest.raises(ValueError, match="at least one"):
        validate_metrics(" , ")
