"""Decode OTLP metric exports (protobuf or JSON), keeping the sidecars' request histogram
and traffic-policy counters.

Only ``meshui.proxy.request.duration`` and the policy counters (``SIDECAR_COUNTERS``, delta
sums) from resources with ``meshui.sidecar=true`` feed the graph (docs/telemetry.md); every
other metric is counted as received and otherwise ignored.
Exponential histograms of any scale and explicit-bucket histograms are remapped onto
``collector.histogram``'s buckets here, delta or cumulative (the connector differences
cumulative points).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from collector import histogram
from collector.errors import InvalidRequest
from collector.otlp_common import (
    Resource,
    as_int,
    encode_export_response,
    is_true,
    json_attributes,
    json_int,
    json_list,
    json_object,
    json_resources,
    pb_attributes,
)
from collector.records import (
    TEMPORALITY_CUMULATIVE,
    TEMPORALITY_DELTA,
    MetricBatch,
    Rejections,
    SidecarCounter,
    SidecarPoint,
)

SIDECAR_METRIC = "meshui.proxy.request.duration"
# Policy counter -> the key it has in an edge's ``events`` (collector.graphstore.EDGE_EVENTS).
SIDECAR_COUNTERS = {
    "meshui.proxy.retries": "retries",
    "meshui.proxy.retry_budget.exhausted": "retry_budget_exhausted",
    "meshui.proxy.overflows": "overflows",
    "meshui.proxy.ejections": "ejections",
    "meshui.proxy.timeouts": "timeouts",
    "meshui.proxy.faults": "faults",
    "meshui.proxy.rate_limited": "rate_limited",
}
# OTLP allows scales -10..20 (https://opentelemetry.io/docs/specs/otel/metrics/data-model/#exponential-scale).
MIN_SCALE, MAX_SCALE = -10, 20
_TEMPORALITY_NAMES = {"AGGREGATION_TEMPORALITY_DELTA": 1, "AGGREGATION_TEMPORALITY_CUMULATIVE": 2}


def exponential_latency(
    scale: int, zero_count: int, negative_total: int, offset: int, counts: Sequence[int]
) -> dict[int, int]:
    """Remap an exponential histogram's buckets onto ours (values <= 0 -> the lowest bucket)."""
    latency: dict[int, int] = {}
    low = zero_count + negative_total
    if low:
        latency[histogram.MIN_INDEX] = low
    for i, count in enumerate(counts):
        if count:
            index = histogram.rescale_index(offset + i, scale)
            latency[index] = latency.get(index, 0) + count
    return latency


def explicit_latency(bounds: Sequence[float], counts: Sequence[int]) -> dict[int, int]:
    """Remap an explicit-bucket histogram: each bucket is counted at its midpoint.

    Bucket ``i`` holds ``(bounds[i-1], bounds[i]]``; the first and the overflow bucket have
    no finite width, so they are counted at their one finite bound.
    """
    latency: dict[int, int] = {}
    last = len(bounds)
    for i, count in enumerate(counts):
        if not count:
            continue
        if last == 0:
            value = 0.0
        elif i == 0:
            value = bounds[0]
        elif i >= last:
            value = bounds[-1]
        else:
            value = (bounds[i - 1] + bounds[i]) / 2
        index = histogram.bucket_index(value)
        latency[index] = latency.get(index, 0) + count
    return latency


def _point(
    resource: Resource,
    attributes: dict[str, Any],
    temporality: int,
    start_ns: int,
    time_ns: int,
    count: int,
    latency: dict[int, int],
    kind: str,
) -> SidecarPoint | str:
    """A validated point, or why it was rejected."""
    direction = attributes.get("meshui.direction")
    if direction not in ("outbound", "inbound"):
        return f"{SIDECAR_METRIC}: meshui.direction must be outbound or inbound, got {direction!r}"
    destination = attributes.get("destination.service")
    if not isinstance(destination, str) or not destination:
        return f"{SIDECAR_METRIC}: destination.service is missing"
    source = attributes.get("source.service")
    if not isinstance(source, str) or not source:
        source = "unknown"
    version = attributes.get("destination.version")
    if temporality not in (TEMPORALITY_DELTA, TEMPORALITY_CUMULATIVE):
        return f"{SIDECAR_METRIC}: aggregation temporality must be delta or cumulative"
    if count < 0:
        return f"{SIDECAR_METRIC}: count must not be negative"
    stream = (
        resource.service,
        resource.instance,
        kind,
        tuple(sorted((k, repr(v)) for k, v in attributes.items())),
    )
    return SidecarPoint(
        stream=stream,
        direction=direction,
        source=source,
        destination=destination,
        destination_version=version if isinstance(version, str) else "",
        status=as_int(attributes.get("http.response.status_code")),
        source_sidecar=is_true(attributes.get("meshui.source.sidecar")),
        temporality=temporality,
        start_ns=start_ns,
        time_ns=time_ns,
        count=count,
        latency=latency,
    )


def _keep(batch: MetricBatch, point: SidecarPoint | SidecarCounter | str) -> None:
    if isinstance(point, str):
        batch.rejected.add(point)
    elif isinstance(point, SidecarCounter):
        batch.counters.append(point)
    else:
        batch.points.append(point)


def _counter(name: str, attributes: dict[str, Any], value: int | float) -> SidecarCounter | str:
    """A validated policy counter point, or why it was rejected."""
    destination = attributes.get("destination.service")
    if not isinstance(destination, str) or not destination:
        return f"{name}: destination.service is missing"
    source = attributes.get("source.service")
    if not isinstance(source, str) or not source:
        source = "unknown"
    if isinstance(value, float):
        if not value.is_integer():
            return f"{name}: value must be a whole number, got {value!r}"
        value = int(value)
    if value < 0:
        return f"{name}: value must not be negative"
    return SidecarCounter(source, destination, SIDECAR_COUNTERS[name], value)


def _counter_problem(name: str, data: str, temporality: int) -> str | None:
    """Why a policy counter metric cannot be used as a whole, or None."""
    if data != "sum":
        return f"{name} must be a sum, got {data}"
    if temporality != TEMPORALITY_DELTA:
        return f"{name}: aggregation temporality must be delta"
    return None


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
                if not resource.sidecar:
                    continue
                if metric.name in SIDECAR_COUNTERS:
                    temporality = metric.sum.aggregation_temporality if data == "sum" else 0
                    problem = _counter_problem(metric.name, data, temporality)
                    if problem is not None:
                        batch.rejected.add(problem, len(points))
                        continue
                    for p in points:
                        value = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                        _keep(batch, _counter(metric.name, pb_attributes(p.attributes), value))
                    continue
                if metric.name != SIDECAR_METRIC:
                    continue
                if data not in ("exponential_histogram", "histogram"):
                    batch.rejected.add(f"{SIDECAR_METRIC} must be a histogram, got {data}", len(points))
                    continue
                exponential = data == "exponential_histogram"
                temporality = getattr(metric, data).aggregation_temporality
                for p in points:
                    if exponential:
                        if not MIN_SCALE <= p.scale <= MAX_SCALE:
                            batch.rejected.add(f"{SIDECAR_METRIC}: scale {p.scale} is out of range")
                            continue
                        latency = exponential_latency(
                            p.scale,
                            p.zero_count,
                            sum(p.negative.bucket_counts),
                            p.positive.offset,
                            p.positive.bucket_counts,
                        )
                    else:
                        latency = explicit_latency(p.explicit_bounds, p.bucket_counts)
                    point = _point(
                        resource,
                        pb_attributes(p.attributes),
                        temporality,
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        p.count,
                        latency,
                        "exp" if exponential else "explicit",
                    )
                    _keep(batch, point)
    return batch


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
                metric = json_object(metric, metric_where)
                for data in ("exponentialHistogram", "histogram", "sum", "gauge", "summary"):
                    if data in metric:
                        break
                else:
                    continue
                body_ = json_object(metric[data], f"{metric_where}.{data}")
                points = json_list(body_, "dataPoints", f"{metric_where}.{data}")
                batch.point_count += len(points)
                name = metric.get("name")
                if not resource.sidecar or (name != SIDECAR_METRIC and name not in SIDECAR_COUNTERS):
                    continue
                temporality = body_.get("aggregationTemporality", 0)
                if isinstance(temporality, str):
                    temporality = _TEMPORALITY_NAMES.get(temporality, 0)
                if name in SIDECAR_COUNTERS:
                    problem = _counter_problem(name, data, temporality if isinstance(temporality, int) else 0)
                    if problem is not None:
                        batch.rejected.add(problem, len(points))
                        continue
                    for p, point in enumerate(points):
                        try:
                            _keep(batch, _json_counter(name, point))
                        except (TypeError, ValueError, AttributeError, InvalidRequest) as exc:
                            batch.rejected.add(f"{metric_where}.dataPoints[{p}]: {exc}")
                    continue
                if data not in ("exponentialHistogram", "histogram"):
                    batch.rejected.add(f"{SIDECAR_METRIC} must be a histogram, got {data}", len(points))
                    continue
                convert = _json_exponential if data == "exponentialHistogram" else _json_explicit
                for p, point in enumerate(points):
                    try:
                        _keep(batch, convert(resource, point, int(temporality)))
                    except (TypeError, ValueError, AttributeError, InvalidRequest) as exc:
                        batch.rejected.add(f"{metric_where}.dataPoints[{p}]: {exc}")
    return batch


def _json_counter(name: str, p: dict[str, Any]) -> SidecarCounter | str:
    attributes = json_attributes(p.get("attributes"), "dataPoint")
    value: int | float = float(p["asDouble"]) if "asDouble" in p else json_int(p.get("asInt"))
    return _counter(name, attributes, value)


def _json_exponential(resource: Resource, p: dict[str, Any], temporality: int) -> SidecarPoint | str:
    scale = int(p.get("scale", 0))
    if not MIN_SCALE <= scale <= MAX_SCALE:
        return f"{SIDECAR_METRIC}: scale {scale} is out of range"
    positive = p.get("positive") or {}
    negative = p.get("negative") or {}
    latency = exponential_latency(
        scale,
        json_int(p.get("zeroCount")),
        sum(json_int(c) for c in negative.get("bucketCounts") or ()),
        int(positive.get("offset", 0)),
        [json_int(c) for c in positive.get("bucketCounts") or ()],
    )
    return _json_point(resource, p, temporality, latency, "exp")


def _json_explicit(resource: Resource, p: dict[str, Any], temporality: int) -> SidecarPoint | str:
    bounds = [float(b) for b in p.get("explicitBounds") or ()]
    counts = [json_int(c) for c in p.get("bucketCounts") or ()]
    return _json_point(resource, p, temporality, explicit_latency(bounds, counts), "explicit")


def _json_point(
    resource: Resource, p: dict[str, Any], temporality: int, latency: dict[int, int], kind: str
) -> SidecarPoint | str:
    return _point(
        resource,
        json_attributes(p.get("attributes"), "dataPoint"),
        temporality,
        json_int(p.get("startTimeUnixNano")),
        json_int(p.get("timeUnixNano")),
        json_int(p.get("count")),
        latency,
        kind,
    )


def encode_response(batch: MetricBatch | Rejections, json: bool) -> bytes:
    """ExportMetricsServiceResponse in the request's encoding."""
    rejected = batch.rejected if isinstance(batch, MetricBatch) else batch
    return encode_export_response(rejected, json, ExportMetricsServiceResponse(), "rejected_data_points")
