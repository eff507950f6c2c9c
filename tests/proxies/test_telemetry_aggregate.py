"""Request aggregation and its OTLP encoding, decoded back with the generated classes."""

from __future__ import annotations

import math

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from proxies.telemetry import Resource, SpanData, Telemetry, histogram
from proxies.telemetry.aggregate import (
    MAX_ATTRIBUTE_LENGTH,
    MAX_EXEMPLARS_PER_POINT,
    RequestAggregator,
    bucket_index,
)
from proxies.telemetry.encode import MetricsEncoder, encode_spans, resource_proto

RESOURCE = Resource(service="frontend", version="v2", instance_id="frontend-7f3a")


def attributes(values: list[KeyValue]) -> dict[str, object]:
    decoded: dict[str, object] = {}
    for attribute in values:
        kind = attribute.value.WhichOneof("value")
        decoded[attribute.key] = getattr(attribute.value, kind)
    return decoded


@pytest.mark.parametrize(
    "value_ms",
    [
        1e-9,
        0.0005,
        0.001,
        0.0010001,
        0.0123,
        0.5,
        1.0,
        1.0905077326652577,
        2.0,
        3.0,
        7.5,
        100.0,
        1024.0,
        999_999.0,
        3_600_000.0,
        3_600_001.0,
        1e12,
    ]
    + [histogram.BASE**i for i in range(-80, 180, 7)]
    + [histogram.BASE**i * 1.0000001 for i in range(-80, 180, 11)],
)
def test_the_inlined_bucket_index_agrees_with_the_collectors(value_ms: float) -> None:
    assert bucket_index(value_ms) == histogram.bucket_index(value_ms)


def test_the_hot_path_buckets_agree_with_the_collectors_for_many_values() -> None:
    values = [math.exp(x / 97.0) for x in range(-700, 1500)]
    aggregator = RequestAggregator(0)
    for value in values:
        aggregator.record("outbound", "a", "b", "v1", 200, False, value / 1000.0)

    (point,) = aggregator.take(1).unique
    expected: dict[int, int] = {}
    for value in values:
        index = histogram.bucket_index(value)
        expected[index] = expected.get(index, 0) + 1
    assert point.buckets == expected


def test_requests_are_aggregated_per_attribute_set_with_count_sum_min_max() -> None:
    aggregator = RequestAggregator(start_ns=100)
    aggregator.record("outbound", "frontend", "cart", "v1", 200, False, 0.002)
    aggregator.record("outbound", "frontend", "cart", "v1", 200, False, 0.010)
    aggregator.record("outbound", "frontend", "cart", "v1", 503, False, 0.001)
    aggregator.record("inbound", "unknown", "frontend", "v2", 200, True, 0.0)

    interval = aggregator.take(now_ns=200)

    assert (interval.start_ns, interval.end_ns) == (100, 200)
    by_set = {point.attributes: point for point in interval.unique}
    ok = by_set["outbound", "frontend", "cart", "v1", 200, False]
    assert ok.count == 2 and ok.sum == pytest.approx(12.0)
    assert (ok.min, ok.max) == (pytest.approx(2.0), pytest.approx(10.0))
    assert ok.buckets == {histogram.bucket_index(2.0): 1, histogram.bucket_index(10.0): 1}
    assert by_set["outbound", "frontend", "cart", "v1", 503, False].count == 1
    zero = by_set["inbound", "unknown", "frontend", "v2", 200, True]
    assert zero.zero_count == 1 and zero.buckets == {}
    assert aggregator.interval.start_ns == 200 and not aggregator.interval.unique


@pytest.mark.parametrize(
    "args",
    [
        ("outbound", "a", "b", "v1", 200, False, None),
        ("outbound", "a", "b", "v1", 200, False, "fast"),
        ("outbound", "a", "b", "v1", 200, False, -0.5),
        ("outbound", "a", "b", "v1", 200, False, math.nan),
        ("outbound", "a", "b", "v1", 200, False, math.inf),
        ("outbound", "a", "b", "v1", "OK", False, 0.1),
        ("outbound", "a", "b", "v1", None, False, 0.1),
        ("outbound", "a", "b", "v1", True, False, 0.1),
        ("outbound", "a", "b", "v1", 10**30, False, 0.1),
        ("outbound", ["a"], "b", "v1", 200, False, 0.1),
        ("outbound", {}, "b", "v1", 200, False, 0.1),
    ],
)
def test_record_request_never_raises_and_counts_what_it_cannot_use(args: tuple) -> None:
    telemetry = Telemetry(RESOURCE, None, 0.0)

    telemetry.record_request(*args)

    assert 'reason="invalid"} 1' in telemetry.prometheus()


def test_odd_but_usable_values_are_normalised_into_one_attribute_set() -> None:
    aggregator = RequestAggregator(0)
    aggregator.record("outbound", "a", "b", None, "200", 1, 0.1)  # type: ignore[arg-type]
    aggregator.record("outbound", "a", "b", "", 200, True, 0.1)
    aggregator.record("inbound", "x" * 10_000, "b", "v1", 200, False, 0.1)
    aggregator.record("inbound", "bad\udcffsurrogate", "b", "v1", 200, False, 0.1)

    unique = aggregator.take(1).unique

    assert [point.attributes for point in unique[:1]] == [("outbound", "a", "b", "", 200, True)]
    assert unique[0].count == 2
    assert len(unique[1].attributes[1]) == MAX_ATTRIBUTE_LENGTH
    assert unique[2].attributes[1].encode("utf-8")
    assert aggregator.dropped_invalid == 0


def test_attribute_sets_beyond_the_limit_are_dropped_and_counted() -> None:
    aggregator = RequestAggregator(0, max_attribute_sets=3)
    for index in range(5):
        aggregator.record("inbound", f"caller-{index}", "b", "v1", 200, False, 0.1)
    aggregator.record("inbound", "caller-0", "b", "v1", 200, False, 0.1)

    assert len(aggregator.take(1).unique) == 3
    assert aggregator.dropped_cardinality == 2


def test_the_encoded_metrics_request_decodes_back_field_by_field() -> None:
    aggregator = RequestAggregator(start_ns=1_700_000_000_000_000_000)
    for duration_ms in (2.1, 2.15, 10.0, 3000.0):
        aggregator.record("outbound", "frontend", "cart", "v1", 200, False, duration_ms / 1000)
    aggregator.record("outbound", "frontend", "cart", "v1", 200, False, 0.0)
    for _ in range(300):  # counts past 127 take multi-byte varints
        aggregator.record("inbound", "unknown", "frontend", "v2", 503, True, 0.5 / 1000)
    interval = aggregator.take(now_ns=1_700_000_001_000_000_000)

    body = MetricsEncoder(resource_proto(RESOURCE)).encode(
        interval.unique, interval.start_ns, interval.end_ns
    )
    request = ExportMetricsServiceRequest.FromString(body)

    (resource_metrics,) = request.resource_metrics
    assert attributes(resource_metrics.resource.attributes) == {
        "service.name": "frontend",
        "service.version": "v2",
        "service.instance.id": "frontend-7f3a",
        "meshui.sidecar": True,
    }
    (scope_metrics,) = resource_metrics.scope_metrics
    assert scope_metrics.scope.name == "meshui.sidecar"
    (metric,) = scope_metrics.metrics
    assert metric.name == "meshui.proxy.request.duration"
    assert metric.unit == "ms"
    assert metric.WhichOneof("data") == "exponential_histogram"
    assert (
        metric.exponential_histogram.aggregation_temporality
        == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    )
    outbound, inbound = metric.exponential_histogram.data_points
    assert attributes(outbound.attributes) == {
        "meshui.direction": "outbound",
        "source.service": "frontend",
        "destination.service": "cart",
        "destination.version": "v1",
        "http.response.status_code": 200,
        "meshui.source.sidecar": False,
    }
    assert outbound.start_time_unix_nano == 1_700_000_000_000_000_000
    assert outbound.time_unix_nano == 1_700_000_001_000_000_000
    assert outbound.count == 5
    assert outbound.sum == pytest.approx(3014.25)
    assert outbound.HasField("min") and outbound.min == 0.0
    assert outbound.max == pytest.approx(3000.0)
    assert outbound.scale == 3
    assert outbound.zero_count == 1
    low = histogram.bucket_index(2.1)
    assert outbound.positive.offset == low
    counts = list(outbound.positive.bucket_counts)
    assert len(counts) == histogram.bucket_index(3000.0) - low + 1
    assert counts[0] == 2  # 2.1 and 2.15 share a ~9% wide bucket
    assert counts[histogram.bucket_index(10.0) - low] == 1
    assert counts[-1] == 1
    assert sum(counts) == 4
    assert not outbound.HasField("negative")

    assert attributes(inbound.attributes)["http.response.status_code"] == 503
    assert attributes(inbound.attributes)["meshui.source.sidecar"] is True
    assert inbound.count == 300 and inbound.zero_count == 0
    assert inbound.positive.offset == histogram.bucket_index(0.5)
    assert list(inbound.positive.bucket_counts) == [300]
    assert inbound.positive.offset < 0  # sint32 zigzag for negative offsets


def test_each_bucket_keeps_its_own_exemplar_so_slow_requests_have_one_too() -> None:
    aggregator = RequestAggregator(start_ns=1_700_000_000_000_000_000)
    edge = ("outbound", "frontend", "cart", "v1", 200, False)
    for i in range(1000):  # the common case, 2 ms, many sampled requests: one exemplar
        aggregator.record(*edge, 0.002)
        aggregator.exemplar(*edge, 0.002, i.to_bytes(16, "big"), (i + 1).to_bytes(8, "big"), 10 + i)
    aggregator.record(*edge, 0.85)  # one slow request: its bucket gets its own exemplar
    slow_trace, slow_span = bytes.fromhex("ab" * 16), bytes.fromhex("cd" * 8)
    aggregator.exemplar(*edge, 0.85, slow_trace, slow_span, 5000)
    # A request that record() never counted (another edge) has nothing to point at.
    aggregator.exemplar("outbound", "frontend", "nowhere", "v1", 200, False, 0.1, slow_trace,
                        slow_span, 1)
    interval = aggregator.take(now_ns=1_700_000_001_000_000_000)

    body = MetricsEncoder(resource_proto(RESOURCE)).encode(
        interval.unique, interval.start_ns, interval.end_ns)
    (point,) = ExportMetricsServiceRequest.FromString(
        body).resource_metrics[0].scope_metrics[0].metrics[0].exponential_histogram.data_points
    assert point.count == 1001
    by_value = {round(exemplar.as_double, 3): exemplar for exemplar in point.exemplars}
    assert set(by_value) == {2.0, 850.0}
    slow = by_value[850.0]
    assert (slow.trace_id, slow.span_id, slow.time_unix_nano) == (slow_trace, slow_span, 5000)
    common = by_value[2.0]  # the latest of the common bucket's sampled requests
    assert common.trace_id == (999).to_bytes(16, "big")
    assert common.span_id == (1000).to_bytes(8, "big")
    assert common.time_unix_nano == 1009


def test_exemplars_per_point_are_bounded_and_existing_buckets_still_update() -> None:
    aggregator = RequestAggregator(start_ns=0)
    edge = ("outbound", "frontend", "cart", "v1", 200, False)
    durations = [histogram.BASE ** (i * 2) / 1000 for i in range(MAX_EXEMPLARS_PER_POINT + 10)]
    for i, duration in enumerate(durations):
        aggregator.record(*edge, duration)
        aggregator.exemplar(*edge, duration, bytes(16), i.to_bytes(8, "big"), i)
    aggregator.record(*edge, durations[0])
    aggregator.exemplar(*edge, durations[0], bytes(16), b"latest!!", 99)
    (point,) = aggregator.take(now_ns=1).unique
    assert point.exemplars is not None
    assert len(point.exemplars) == MAX_EXEMPLARS_PER_POINT
    assert point.exemplars[bucket_index(durations[0] * 1000)][1] == b"latest!!"


def test_the_encoded_span_batch_decodes_back_field_by_field() -> None:
    server = SpanData(
        trace_id=bytes(range(16)),
        span_id=bytes(range(8)),
        parent_span_id=bytes(range(8, 16)),
        name="GET cart",
        kind="server",
        start_ns=10,
        end_ns=20,
        attributes={
            "http.request.method": "GET",
            "http.response.status_code": 503,
            "ratio": 0.5,
            "retried": True,
        },
        error=True,
    )
    client = SpanData(bytes(range(1, 17)), bytes(range(1, 9)), None, "POST pay", "client", 30, 40, {}, False)

    request = ExportTraceServiceRequest.FromString(encode_spans(resource_proto(RESOURCE), [server, client]))

    (resource_spans,) = request.resource_spans
    assert attributes(resource_spans.resource.attributes)["service.name"] == "frontend"
    first, second = resource_spans.scope_spans[0].spans
    assert first.trace_id == bytes(range(16)) and first.span_id == bytes(range(8))
    assert first.parent_span_id == bytes(range(8, 16))
    assert first.name == "GET cart" and first.kind == Span.SPAN_KIND_SERVER
    assert (first.start_time_unix_nano, first.end_time_unix_nano) == (10, 20)
    assert attributes(first.attributes) == {
        "http.request.method": "GET",
        "http.response.status_code": 503,
        "ratio": 0.5,
        "retried": True,
    }
    assert first.status.code == Status.STATUS_CODE_ERROR
    assert second.kind == Span.SPAN_KIND_CLIENT and second.parent_span_id == b""
    assert second.status.code == Status.STATUS_CODE_UNSET
