"""Traffic-policy counters exported over OTLP per edge, decoded from the protobuf sent."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from proxies.dataplane.metrics import ProxyMetrics
from proxies.telemetry import Telemetry
from tests.proxies.test_telemetry_export import RESOURCE, Sink, dropped, measurements
from tests.proxies.test_telemetry_export import sink as sink  # noqa: F401 - the fixture

DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
EDGE = {"source.service": "frontend", "destination.service": "catalog"}

Sums = dict[tuple[str, frozenset[tuple[str, Any]]], int]


def sums(body: bytes) -> Sums:
    """The policy counters of one export request: (name, attributes) -> value."""
    found: Sums = {}
    for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.WhichOneof("data") != "sum":
                    continue
                assert metric.sum.aggregation_temporality == DELTA and metric.sum.is_monotonic
                for point in metric.sum.data_points:
                    attributes = frozenset((kv.key, kv.value.string_value) for kv in point.attributes)
                    found[metric.name, attributes] = point.as_int
    return found


def on_edge(name: str, value: int, **extra: str) -> tuple[tuple[str, frozenset[tuple[str, Any]]], int]:
    attributes = {**EDGE, **{f"meshui.{key}": v for key, v in extra.items()}}
    return (name, frozenset(attributes.items())), value


async def flush_manually(telemetry: Telemetry) -> None:
    """Close the interval and send the backlog now (the export task's two steps, without it)."""
    await telemetry._close_interval()
    await telemetry._send(telemetry._metrics, True)  # True: now, not after the backoff


async def test_each_policy_event_is_exported_as_a_delta_sum_on_its_edge(sink: Sink) -> None:
    telemetry = Telemetry(RESOURCE, sink.url, 0.01, export_interval=3600.0)
    metrics = ProxyMetrics(telemetry.edge_counters)
    await telemetry.start()
    telemetry.record_request("outbound", "frontend", "catalog", "v1", 200, True, 0.01)
    metrics.count_retry("frontend", "catalog")
    metrics.count_retry("frontend", "catalog")
    metrics.count_retry_budget_exhausted("frontend", "catalog")
    metrics.count_overflow("max_pending_requests", "frontend", "catalog")
    metrics.count_ejection("frontend", "catalog")
    metrics.count_timeout("per-try", "frontend", "catalog")
    metrics.count_timeout("connect", "frontend", "catalog")
    metrics.count_fault("abort", "frontend", "catalog")
    metrics.count_rate_limited("destination", True, "frontend", "catalog")
    metrics.count_rate_limited("source", False, "checkout", "frontend")
    metrics.count_timeout("idle")  # a client connection idle between requests: no edge

    await telemetry.stop()  # flushes the interval

    [body] = sink.bodies("/v1/metrics")
    assert measurements(body) == 1  # the request histogram travels in the same request
    assert sums(body) == dict(
        [
            on_edge("meshui.proxy.retries", 2),
            on_edge("meshui.proxy.retry_budget.exhausted", 1),
            on_edge("meshui.proxy.overflows", 1, limit="max_pending_requests"),
            on_edge("meshui.proxy.ejections", 1),
            on_edge("meshui.proxy.timeouts", 1, kind="per-try"),
            on_edge("meshui.proxy.timeouts", 1, kind="connect"),
            on_edge("meshui.proxy.faults", 1, kind="abort"),
            on_edge("meshui.proxy.rate_limited", 1, scope="destination", direction="outbound"),
            (
                (
                    "meshui.proxy.rate_limited",
                    frozenset(
                        {
                            ("source.service", "checkout"),
                            ("destination.service", "frontend"),
                            ("meshui.scope", "source"),
                            ("meshui.direction", "inbound"),
                        }
                    ),
                ),
                1,
            ),
        ]
    )
    assert metrics.timeouts["idle"] == 1  # still on the admin port


async def test_a_failed_export_resends_the_same_counts_and_the_next_carries_only_the_increase(
    sink: Sink,
) -> None:
    sink.answer("/v1/metrics", 503)
    telemetry = Telemetry(RESOURCE, sink.url, 0.01, export_interval=3600.0)
    metrics = ProxyMetrics(telemetry.edge_counters)
    metrics.count_retry("frontend", "catalog")
    metrics.count_retry("frontend", "catalog")
    await flush_manually(telemetry)  # answered 503: kept in the backlog
    metrics.count_retry("frontend", "catalog")
    await flush_manually(telemetry)  # the first interval again, then the second
    await flush_manually(telemetry)  # nothing happened since: nothing is sent

    failed, resent, increase = sink.bodies("/v1/metrics")
    assert resent == failed
    assert sums(resent) == dict([on_edge("meshui.proxy.retries", 2)])
    assert sums(increase) == dict([on_edge("meshui.proxy.retries", 1)])
    assert metrics.retries_total == 3
    await telemetry.start()
    await telemetry.stop()
    assert len(sink.bodies("/v1/metrics")) == 3
    assert all(dropped(telemetry, "metrics", r) == 0 for r in ("rejected", "backlog_full", "shutdown"))


async def test_counters_that_do_not_fit_beside_the_histograms_go_in_further_requests(sink: Sink) -> None:
    telemetry = Telemetry(RESOURCE, sink.url, 0.01, export_interval=3600.0)
    metrics = ProxyMetrics(telemetry.edge_counters)
    for index in range(60):
        telemetry.record_request("outbound", "frontend", f"svc-{index}", "v1", 200, True, 0.01)
    for index in range(150):
        metrics.count_retry("frontend", f"svc-{index}")

    await flush_manually(telemetry)

    bodies = sink.bodies("/v1/metrics")
    points = [measurements(body) + len(sums(body)) for body in bodies]
    assert points == [100, 100, 10]  # at most 100 data points per request
    assert sum(measurements(body) for body in bodies) == 60
    assert sum(sum(sums(body).values()) for body in bodies) == 150
    await telemetry.start()
    await telemetry.stop()


def test_edges_past_the_series_limit_are_dropped_and_counted() -> None:
    telemetry = Telemetry(RESOURCE, None, 0.01, max_attribute_sets=1)
    metrics = ProxyMetrics(telemetry.edge_counters)

    metrics.count_retry("frontend", "catalog")
    metrics.count_retry("frontend", "catalog")  # the same edge: counted
    metrics.count_retry("frontend", "ratings")  # a second edge: no room

    assert telemetry.edge_counters.take() == {("meshui.proxy.retries", "frontend", "catalog", ()): 2}
    assert dropped(telemetry, "metrics", "cardinality_limit") == 1
    assert telemetry.dropped_total == 1
    assert metrics.retries_total == 3  # the admin port counts every one


async def test_policy_events_lost_at_shutdown_are_counted_in_their_own_unit() -> None:
    # Nothing listens on port 9: every export fails, so everything is still pending at stop.
    telemetry = Telemetry(RESOURCE, "http://127.0.0.1:9", 0.01, export_interval=3600.0, stop_timeout=0.5)
    metrics = ProxyMetrics(telemetry.edge_counters)
    await telemetry.start()
    telemetry.record_request("outbound", "frontend", "catalog", "v1", 200, True, 0.01)
    metrics.count_retry("frontend", "catalog")
    metrics.count_ejection("frontend", "catalog")
    await telemetry._close_interval()  # one batch in the backlog carrying both events
    metrics.count_retry("frontend", "catalog")  # and one more never encoded

    await telemetry.stop()

    assert dropped(telemetry, "events", "shutdown") == 3
    assert dropped(telemetry, "metrics", "shutdown") == 1
    assert 'meshui_telemetry_dropped_total{signal="events",reason="shutdown"} 3' in telemetry.prometheus()


async def test_policy_events_in_a_batch_evicted_from_a_full_backlog_are_counted() -> None:
    telemetry = Telemetry(
        RESOURCE, "http://127.0.0.1:9", 0.01, export_interval=3600.0, max_metric_intervals=1
    )
    metrics = ProxyMetrics(telemetry.edge_counters)
    metrics.count_retry("frontend", "catalog")
    metrics.count_retry("frontend", "catalog")
    await telemetry._close_interval()
    metrics.count_retry("frontend", "catalog")

    await telemetry._close_interval()  # the backlog holds one interval: the first goes

    assert dropped(telemetry, "events", "backlog_full") == 2
