"""OTLP protobuf encoding of sidecar metrics and spans (pure: values in, bytes out).

Runs on the proxy's event loop under the GIL, so callers keep batches small (at most
``MAX_POINTS_PER_REQUEST`` data points or 128 spans: well under a millisecond each, see
bench/RESULTS.md). https://opentelemetry.io/docs/specs/otlp/
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    ExponentialHistogramDataPoint,
    Metric,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from proxies.telemetry.aggregate import AttributeSet, Point, attribute_text
from proxies.telemetry.counters import CounterKey
from proxies.telemetry.events import BY_METRIC
from proxies.telemetry.model import AttributeValue, Resource, SpanData

if TYPE_CHECKING:
    from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

METRIC_NAME = "meshui.proxy.request.duration"
METRIC_UNIT = "ms"
METRIC_DESCRIPTION = "Duration of requests through the sidecar, as seen by the sidecar."
SCOPE_NAME = "meshui.sidecar"
SCALE = 3
# 5-9 µs per data point (MetricsEncoder; 9 for very wide histograms): 100 points stay
# under a millisecond of encoding per request.
MAX_POINTS_PER_REQUEST = 100

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
    attributes: dict[str, AttributeValue] = {
        "service.name": resource.service,
        "service.version": resource.version,
        "service.instance.id": resource.instance_id,
        "meshui.sidecar": True,
    }
    _set_attributes(proto.attributes, attributes.items())
    return proto


def _set_attributes(
    target: RepeatedCompositeFieldContainer[KeyValue], items: Iterable[tuple[str, AttributeValue]]
) -> None:
    add = target.add
    for key, value in items:
        attribute: KeyValue = add()
        attribute.key = key
        # Exact types, not isinstance: bool is an int too, and a str subclass goes through str().
        if type(value) is str:
            attribute.value.string_value = value
        elif type(value) is bool:
            attribute.value.bool_value = value
        elif type(value) is int:
            if -(2**63) <= value < 2**63:
                attribute.value.int_value = value
            else:
                attribute.value.string_value = str(value)
        elif type(value) is float:
            attribute.value.double_value = value
        else:
            attribute.value.string_value = str(value)


class MetricsEncoder:
    """Encodes intervals of ``Point`` as ExportMetricsServiceRequest bytes.

    The request is written in protobuf wire format by hand, around pieces upb encodes:
    building the same request from upb message objects cost ~12 µs per data point (6 µs
    of it setting repeated bucket counts one conversion at a time), this 5-9 µs: the
    fixed fields go in one struct.pack, bucket counts below 128 are packed by ``bytes()``
    and each attribute set's encoded KeyValues are cached (the sets recur every interval).
    Tests decode the bytes with the generated classes and check every field.
    https://protobuf.dev/programming-guides/encoding/
    """

    __slots__ = ("_resource", "_attributes")

    MAX_CACHED_ATTRIBUTE_SETS = 10_000

    def __init__(self, resource: ResourceProto) -> None:
        self._resource = _field(1, resource.SerializeToString())
        self._attributes: dict[AttributeSet, bytes] = {}

    def encode(
        self,
        points: Sequence[Point],
        start_ns: int,
        end_ns: int,
        counts: Sequence[tuple[CounterKey, int]] = (),
    ) -> bytes:
        """One request: one delta exponential histogram data point per attribute set, then
        the policy counters as delta monotonic sums (one metric per counter name)."""
        scope_metrics = _SCOPE
        times = _pack_times(0x11, start_ns, 0x19, end_ns)
        data_points = [self._data_point(point, times) for point in points if point.count]
        if data_points or not counts:
            histogram = b"".join(data_points) + _AGGREGATION_DELTA
            scope_metrics += _field(2, _METRIC_HEADER + _field(10, histogram))
        if counts:
            scope_metrics += encode_counters(counts, start_ns, end_ns)
        resource_metrics = self._resource + _field(2, scope_metrics)
        return _field(1, resource_metrics)

    def _data_point(self, point: Point, times: bytes) -> bytes:
        attributes = self._attributes.get(point.attributes)
        if attributes is None:
            attributes = self._encode_attributes(point.attributes)
        parts = [
            attributes,
            times,
            _pack_point(
                0x21,
                point.count,
                0x29,
                point.sum,
                0x30,
                _ZIGZAG_SCALE,
                0x39,
                point.zero_count,
                0x61,
                point.min,
                0x69,
                point.max,
            ),
        ]
        buckets = point.buckets
        if buckets:
            low = min(buckets)
            counts = [0] * (max(buckets) - low + 1)
            for index, count in buckets.items():
                counts[index - low] = count
            packed = _varints(counts)
            positive = b"\x08" + _varint(_zigzag(low)) + b"\x12" + _varint(len(packed)) + packed
            parts.append(b"\x42" + _varint(len(positive)) + positive)
        exemplars = point.exemplars
        if exemplars:
            parts.extend([_exemplar(*exemplar) for exemplar in exemplars.values()])
        body = b"".join(parts)
        return b"\x0a" + _varint(len(body)) + body

    def _encode_attributes(self, attributes: AttributeSet) -> bytes:
        holder = ExponentialHistogramDataPoint()
        _set_attributes(holder.attributes, zip(_POINT_KEYS, attributes, strict=True))
        encoded = holder.SerializeToString()  # only field 1 is set: the KeyValues
        if len(self._attributes) >= self.MAX_CACHED_ATTRIBUTE_SETS:
            self._attributes.clear()
        self._attributes[attributes] = encoded
        return encoded


def encode_counters(counts: Sequence[tuple[CounterKey, int]], start_ns: int, end_ns: int) -> bytes:
    """Policy counters as repeated ``Metric`` fields of a ScopeMetrics (off the hot path:
    a handful of points per interval, so the generated classes are fast enough)."""
    metrics: dict[str, Metric] = {}
    for (name, source, destination, attributes), value in counts:
        metric = metrics.get(name)
        if metric is None:
            description = BY_METRIC[name].description
            metric = metrics[name] = Metric(name=name, description=description, unit="1")
            metric.sum.aggregation_temporality = _DELTA
            metric.sum.is_monotonic = True
        point = metric.sum.data_points.add()
        point.start_time_unix_nano = start_ns
        point.time_unix_nano = end_ns
        point.as_int = value
        items = [
            ("source.service", attribute_text(source)),
            ("destination.service", attribute_text(destination)),
            *((key, attribute_text(v)) for key, v in attributes),
        ]
        _set_attributes(point.attributes, items)
    return b"".join(_field(2, metric.SerializeToString()) for metric in metrics.values())


def _exemplar(trace_id: bytes, span_id: bytes, value_ms: float, time_ns: int) -> bytes:
    """ExponentialHistogramDataPoint.exemplars (field 11): time, as_double, span id, trace id."""
    body = _pack_exemplar(0x11, time_ns, 0x19, value_ms, 0x22, 8) + span_id + b"\x2a\x10" + trace_id
    return b"\x5a" + _varint(len(body)) + body


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varints(values: list[int]) -> bytes:
    """Packed repeated uint64: one byte per value below 128, the common case."""
    if max(values) < 0x80:
        return bytes(values)
    return b"".join([_varint(value) for value in values])


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 31)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


_SMALL = [bytes([value]) for value in range(0x80)]
_ZIGZAG_SCALE = _zigzag(SCALE)
# tag + fixed64 start, tag + fixed64 end
_pack_times = struct.Struct("<BQBQ").pack
# count (fixed64), sum (double), scale (sint32 varint < 128), zero_count (fixed64),
# min (double), max (double): field numbers 4, 5, 6, 7, 12, 13.
_pack_point = struct.Struct("<BQBdBBBQBdBd").pack
# Exemplar: time_unix_nano (fixed64, 2), as_double (3), span_id (bytes, 4) length prefix.
_pack_exemplar = struct.Struct("<BQBdBB").pack
_AGGREGATION_DELTA = b"\x10" + _varint(_DELTA)
_METRIC_HEADER = (
    _field(1, METRIC_NAME.encode()) + _field(2, METRIC_DESCRIPTION.encode()) + _field(3, METRIC_UNIT.encode())
)
_SCOPE = _field(1, _field(1, SCOPE_NAME.encode()))


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
        for time_ns, name, attributes in span.events:
            event = proto.events.add()
            event.time_unix_nano = time_ns
            event.name = name
            if attributes:
                _set_attributes(event.attributes, attributes.items())
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
