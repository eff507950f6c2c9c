"""OTLP protobuf encoding of sidecar metrics and spans (pure: values in, bytes out).

Runs on the proxy's event loop under the GIL, so callers keep batches small (at most
``MAX_POINTS_PER_REQUEST`` data points or 128 spans: well under a millisecond each, see
bench/RESULTS.md). https://opentelemetry.io/docs/specs/otlp/
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from proxies.telemetry.aggregate import Point
from proxies.telemetry.model import AttributeValue, Resource, SpanData

METRIC_NAME = "meshui.proxy.request.duration"
METRIC_UNIT = "ms"
METRIC_DESCRIPTION = "Duration of requests through the sidecar, as seen by the sidecar."
SCOPE_NAME = "meshui.sidecar"
SCALE = 3
# ~3 µs per data point with upb: 250 points stay under a millisecond of encoding.
MAX_POINTS_PER_REQUEST = 250

_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_SPAN_KIND = {"server": Span.SPAN_KIND_SERVER, "client": Span.SPAN_KIND_CLIENT}
_POINT_KEYS = (
    "meshui.direction",
    "source.service",
    "destination.service",
    "destination.version",
    "http.response.status_code",
    "meshui.source.sidecar",
)


def resource_proto(resource: Resource) -> ResourceProto:
    proto = ResourceProto()
    _set_attributes(
        proto.attributes,
        {
            "service.name": resource.service,
            "service.version": resource.version,
            "service.instance.id": resource.instance_id,
            "meshui.sidecar": True,
        }.items(),
    )
    return proto


def _set_attributes(target: object, items: Iterable[tuple[str, AttributeValue]]) -> None:
    add = target.add  # type: ignore[attr-defined]
    for key, value in items:
        attribute: KeyValue = add()
        attribute.key = key
        kind = type(value)
        # bool before int: True is an int too.
        if kind is str:
            attribute.value.string_value = value
        elif kind is bool:
            attribute.value.bool_value = value
        elif kind is int:
            if -(2**63) <= value < 2**63:  # type: ignore[operator]
                attribute.value.int_value = value
            else:
                attribute.value.string_value = str(value)
        elif kind is float:
            attribute.value.double_value = value
        else:
            attribute.value.string_value = str(value)


def encode_metrics(
    resource: ResourceProto, points: Sequence[Point], start_ns: int, end_ns: int
) -> bytes:
    """One ExportMetricsServiceRequest: one delta exponential histogram point per set."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.CopyFrom(resource)
    scope_metrics = resource_metrics.scope_metrics.add()
    scope_metrics.scope.name = SCOPE_NAME
    metric = scope_metrics.metrics.add()
    metric.name = METRIC_NAME
    metric.unit = METRIC_UNIT
    metric.description = METRIC_DESCRIPTION
    histogram = metric.exponential_histogram
    histogram.aggregation_temporality = _DELTA
    add_point = histogram.data_points.add
    for point in points:
        if not point.count:
            continue
        data_point = add_point()
        _set_attributes(data_point.attributes, zip(_POINT_KEYS, point.attributes, strict=True))
        data_point.start_time_unix_nano = start_ns
        data_point.time_unix_nano = end_ns
        data_point.count = point.count
        data_point.sum = point.sum
        data_point.min = point.min
        data_point.max = point.max
        data_point.scale = SCALE
        data_point.zero_count = point.zero_count
        buckets = point.buckets
        if buckets:
            low = min(buckets)
            high = max(buckets)
            data_point.positive.offset = low
            get = buckets.get
            data_point.positive.bucket_counts.extend([get(i, 0) for i in range(low, high + 1)])
    return request.SerializeToString()


def encode_spans(resource: ResourceProto, spans: Sequence[SpanData]) -> bytes:
    """One ExportTraceServiceRequest holding ``spans`` (callers pass at most 128)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.CopyFrom(resource)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = SCOPE_NAME
    add_span = scope_spans.spans.add
    for span in spans:
        proto = add_span()
        proto.trace_id = span.trace_id
        proto.span_id = span.span_id
        if span.parent_span_id:
            proto.parent_span_id = span.parent_span_id
        proto.name = span.name
        proto.kind = _SPAN_KIND.get(span.kind, Span.SPAN_KIND_INTERNAL)
        proto.start_time_unix_nano = span.start_ns
        proto.end_time_unix_nano = span.end_ns
        if span.attributes:
            _set_attributes(proto.attributes, span.attributes.items())
        if span.error:
            proto.status.code = Status.STATUS_CODE_ERROR
    return request.SerializeToString()


def rejected_in_response(signal: str, body: bytes) -> tuple[int, str]:
    """(rejected items, error message) from a 200 response's partial_success, if any."""
    if not body:
        return 0, ""
    if signal == "metrics":
        metrics = ExportMetricsServiceResponse.FromString(body)
        partial = metrics.partial_success
        return partial.rejected_data_points, partial.error_message
    traces = ExportTraceServiceResponse.FromString(body)
    return traces.partial_success.rejected_spans, traces.partial_success.error_message
