"""Decode OTLP metric exports (protobuf or JSON), keeping the sidecars' request histogram
and traffic-policy counters.

Only ``meshui.proxy.request.duration`` and the policy counters (``SIDECAR_COUNTERS``, delta
sums) from resources with ``meshui.sidecar=true`` feed the graph (docs/telemetry.md); every
other metric is counted as received and otherwise ignored. Both decoders read a point's
fields into plain values and hand them to ``collector.sidecar_points``, which applies the
same rules to either encoding: a point that breaks one is rejected on its own (partial
success), the rest of the export is kept.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from collector import validation
from collector.errors import InvalidRequest
from collector.otlp_common import (
    Resource,
    encode_export_response,
    json_attributes,
    json_list,
    json_object,
    json_resources,
    pb_attributes,
)
from collector.records import MetricBatch, Rejections, SidecarCounter, SidecarPoint
from collector.sidecar_points import (
    MAX_EXEMPLARS_PER_POINT,
    SIDECAR_COUNTERS,
    SIDECAR_METRIC,
    counter_point,
    counter_problem,
    explicit_latency,
    explicit_point,
    exponential_latency,
    exponential_point,
    point_exemplars,
)
from collector.validation import MAX_SCALE, MIN_SCALE, Rejected

__all__ = [
    "MAX_SCALE",
    "MIN_SCALE",
    "SIDECAR_COUNTERS",
    "SIDECAR_METRIC",
    "decode_json",
    "decode_protobuf",
    "encode_response",
    "explicit_latency",
    "exponential_latency",
]

_TEMPORALITY_NAMES = {
    "AGGREGATION_TEMPORALITY_UNSPECIFIED": 0,
    "AGGREGATION_TEMPORALITY_DELTA": 1,
    "AGGREGATION_TEMPORALITY_CUMULATIVE": 2,
}
# What a malformed OTLP/JSON point can raise while being read: it rejects that point only.
_POINT_ERRORS = (InvalidRequest, TypeError, ValueError, AttributeError, OverflowError, KeyError)


def _keep(batch: MetricBatch, point: SidecarPoint | SidecarCounter) -> None:
    if isinstance(point, SidecarCounter):
        batch.counters.append(point)
    else:
        batch.points.append(point)


def _extremes(p: Any) -> dict[str, float | None]:
    return {name: getattr(p, name) if p.HasField(name) else None for name in ("sum", "min", "max")}


def decode_protobuf(body: bytes) -> MetricBatch:
    try:
        request = ExportMetricsServiceRequest.FromString(body)
    except DecodeError as exc:
        raise InvalidRequest(f"body is not a valid protobuf ExportMetricsServiceRequest: {exc}") from None
    batch = MetricBatch()
    for resource_metrics in request.resource_metrics:
        resource = Resource(pb_attributes(resource_metrics.resource.attributes))
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                data = metric.WhichOneof("data")
                if data is None:
                    continue
                points = getattr(metric, data).data_points
                batch.point_count += len(points)
                name = metric.name
                if not resource.sidecar or (name != SIDECAR_METRIC and name not in SIDECAR_COUNTERS):
                    continue
                if resource.problem:
                    batch.rejected.add(resource.problem, len(points))
                    continue
                if name in SIDECAR_COUNTERS:
                    temporality = metric.sum.aggregation_temporality if data == "sum" else 0
                    problem = counter_problem(name, data, temporality)
                    if problem is not None:
                        batch.rejected.add(problem, len(points))
                        continue
                    for p in points:
                        value = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                        try:
                            _keep(batch, counter_point(name, pb_attributes(p.attributes), value, resource))
                        except Rejected as exc:
                            batch.rejected.add(str(exc))
                    continue
                if data not in ("exponential_histogram", "histogram"):
                    batch.rejected.add(f"{SIDECAR_METRIC} must be a histogram, got {data}", len(points))
                    continue
                temporality = getattr(metric, data).aggregation_temporality
                for p in points:
                    try:
                        point = _pb_histogram_point(resource, p, data, temporality)
                    except Rejected as exc:
                        batch.rejected.add(str(exc))
                        continue
                    if p.exemplars:
                        batch.bad_exemplars += point_exemplars(point, [
                            (e.trace_id, e.span_id,
                             e.as_int if e.WhichOneof("value") == "as_int" else e.as_double,
                             e.time_unix_nano) for e in p.exemplars])
                    _keep(batch, point)
    return batch


def _pb_histogram_point(resource: Resource, p: Any, data: str, temporality: int) -> SidecarPoint:
    attributes = pb_attributes(p.attributes)
    times = (p.start_time_unix_nano, p.time_unix_nano)
    if data == "exponential_histogram":
        return exponential_point(
            resource,
            attributes,
            temporality,
            times,
            p.count,
            p.scale,
            p.zero_count,
            (p.positive.offset, p.positive.bucket_counts),
            (p.negative.offset, p.negative.bucket_counts),
            _extremes(p),
        )
    return explicit_point(
        resource, attributes, temporality, times, p.count, p.explicit_bounds, p.bucket_counts, _extremes(p)
    )


def decode_json(body: bytes) -> MetricBatch:
    batch = MetricBatch()
    for where, resource_metrics, resource in json_resources(
        body, "ExportMetricsServiceRequest", "resourceMetrics"
    ):
        for s, scope_metrics in enumerate(json_list(resource_metrics, "scopeMetrics", where)):
            scope_where = f"{where}.scopeMetrics[{s}]"
            scope_metrics = json_object(scope_metrics, scope_where)
            for m, metric in enumerate(json_list(scope_metrics, "metrics", scope_where)):
                metric_where = f"{scope_where}.metrics[{m}]"
                _json_metric(batch, resource, json_object(metric, metric_where), metric_where)
    return batch


def _json_metric(batch: MetricBatch, resource: Resource, metric: dict[str, Any], where: str) -> None:
    for data in ("exponentialHistogram", "histogram", "sum", "gauge", "summary"):
        if data in metric:
            break
    else:
        return
    body = json_object(metric[data], f"{where}.{data}")
    points = json_list(body, "dataPoints", f"{where}.{data}")
    batch.point_count += len(points)
    name = metric.get("name", "")
    if not isinstance(name, str):
        batch.rejected.add(f"{where}.name must be a string, got {type(name).__name__}", len(points))
        return
    if not resource.sidecar or (name != SIDECAR_METRIC and name not in SIDECAR_COUNTERS):
        return
    if resource.problem:
        batch.rejected.add(resource.problem, len(points))
        return
    try:
        temporality = validation.json_enum(
            body.get("aggregationTemporality", 0),
            _TEMPORALITY_NAMES,
            f"{where}.{data}.aggregationTemporality",
        )
    except Rejected as exc:
        batch.rejected.add(str(exc), len(points))
        return
    if name in SIDECAR_COUNTERS:
        problem = counter_problem(name, data, temporality)
        if problem is not None:
            batch.rejected.add(problem, len(points))
            return
        convert: Any = lambda p: _json_counter(name, p, resource)  # noqa: E731
    elif data not in ("exponentialHistogram", "histogram"):
        batch.rejected.add(f"{SIDECAR_METRIC} must be a histogram, got {data}", len(points))
        return
    else:
        exponential = data == "exponentialHistogram"
        convert = lambda p: _json_histogram_point(batch, resource, p, exponential, temporality)  # noqa: E731
    for p, point in enumerate(points):
        try:
            _keep(batch, convert(json_object(point, "data point")))
        except _POINT_ERRORS as exc:
            batch.rejected.add(f"{where}.dataPoints[{p}]: {exc}")


def _json_counter(name: str, p: dict[str, Any], resource: Resource) -> SidecarCounter:
    attributes = json_attributes(p.get("attributes"), "dataPoint")
    value: int | float
    if "asDouble" in p:
        value = validation.json_float(p["asDouble"], "asDouble")
    else:
        value = validation.json_int(p.get("asInt"), "asInt", -(2**63), 2**63 - 1)
    return counter_point(name, attributes, value, resource)


def _json_buckets(side: Any, what: str) -> tuple[int, list[int]]:
    side = side or {}
    if not isinstance(side, dict):
        raise Rejected(f"{what} must be an object")
    offset = validation.json_int(side.get("offset"), f"{what}.offset", -(2**31), 2**31 - 1)
    counts = side.get("bucketCounts") or []
    if not isinstance(counts, list):
        raise Rejected(f"{what}.bucketCounts must be an array")
    return offset, [validation.json_int(c, f"{what}.bucketCounts") for c in counts]


def _json_histogram_point(
    batch: MetricBatch, resource: Resource, p: dict[str, Any], exponential: bool, temporality: int
) -> SidecarPoint:
    point = _json_histogram_counts(resource, p, exponential, temporality)
    exemplars = p.get("exemplars")
    if isinstance(exemplars, list) and exemplars:
        raw = []
        for e in exemplars[:MAX_EXEMPLARS_PER_POINT]:
            try:
                value = e.get("asDouble", e.get("asInt"))
                raw.append((validation.json_hex_id(e.get("traceId"), 16, "traceId"),
                            validation.json_hex_id(e.get("spanId"), 8, "spanId"),
                            validation.json_float(value, "asDouble") if value is not None else -1.0,
                            validation.json_int(e.get("timeUnixNano"), "timeUnixNano")))
            except (*_POINT_ERRORS, Rejected):
                batch.bad_exemplars += 1
        batch.bad_exemplars += point_exemplars(point, raw) + max(len(exemplars) - MAX_EXEMPLARS_PER_POINT, 0)
    elif exemplars is not None and not isinstance(exemplars, list):
        batch.bad_exemplars += 1
    return point


def _json_histogram_counts(
    resource: Resource, p: dict[str, Any], exponential: bool, temporality: int
) -> SidecarPoint:
    attributes = json_attributes(p.get("attributes"), "dataPoint")
    times = (
        validation.json_int(p.get("startTimeUnixNano"), "startTimeUnixNano"),
        validation.json_int(p.get("timeUnixNano"), "timeUnixNano"),
    )
    count = validation.json_int(p.get("count"), "count")
    extremes = {
        k: None if p.get(k) is None else validation.json_float(p[k], k) for k in ("sum", "min", "max")
    }
    if exponential:
        return exponential_point(
            resource,
            attributes,
            temporality,
            times,
            count,
            validation.json_int(p.get("scale"), "scale", -(2**31), 2**31 - 1),
            validation.json_int(p.get("zeroCount"), "zeroCount"),
            _json_buckets(p.get("positive"), "positive"),
            _json_buckets(p.get("negative"), "negative"),
            extremes,
        )
    raw_bounds = p.get("explicitBounds") or []
    raw_counts = p.get("bucketCounts") or []
    if not isinstance(raw_bounds, list) or not isinstance(raw_counts, list):
        raise Rejected("explicitBounds and bucketCounts must be arrays")
    bounds = [validation.json_float(b, "explicitBounds") for b in raw_bounds]
    counts = [validation.json_int(c, "bucketCounts") for c in raw_counts]
    return explicit_point(resource, attributes, temporality, times, count, bounds, counts, extremes)


def encode_response(batch: MetricBatch | Rejections, json: bool) -> bytes:
    """ExportMetricsServiceResponse in the request's encoding."""
    rejected = batch.rejected if isinstance(batch, MetricBatch) else batch
    return encode_export_response(rejected, json, ExportMetricsServiceResponse(), "rejected_data_points")
