"""Build OTLP exports for tests: sidecar metrics and SDK spans, as protobuf or OTLP/JSON."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from proxies.telemetry import histogram

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
METRIC = "meshui.proxy.request.duration"


def set_attributes(target: Any, attributes: dict[str, Any]) -> None:
    for key, value in attributes.items():
        kv = target.add(key=key)
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        else:
            kv.value.string_value = value


def sidecar_metrics(
    points: list[dict[str, Any]],
    *,
    service: str = "web",
    kind: str = "exponential_histogram",
    name: str = METRIC,
    temporality: int = 1,
) -> ExportMetricsServiceRequest:
    """One sidecar resource with one metric holding ``points``.

    A point is a dict of data point fields (``count``, ``scale``, ``bucket_counts``, ...) plus
    ``attributes``; unset attributes default to an outbound call web -> api. For an
    exponential histogram ``offset``/``buckets`` fill ``positive``; without them the whole
    count sits in one bucket (10 ms at scale 3).
    """
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    set_attributes(rm.resource.attributes, {"service.name": service, "meshui.sidecar": True})
    metric = rm.scope_metrics.add().metrics.add(name=name)
    data = getattr(metric, kind)
    if kind != "gauge":
        data.aggregation_temporality = temporality
    for spec in points:
        spec = dict(spec)
        attributes = {"meshui.direction": "outbound", "source.service": service, "destination.service": "api"}
        attributes.update(spec.pop("attributes", {}))
        point = data.data_points.add(start_time_unix_nano=T0, time_unix_nano=T0 + 1000 * MS)
        set_attributes(point.attributes, {k: v for k, v in attributes.items() if v is not None})
        if kind == "exponential_histogram":
            count = spec.setdefault("count", 1)
            point.scale = spec.pop("scale", 3)
            point.positive.offset = spec.pop("offset", histogram.bucket_index(10.0))
            point.positive.bucket_counts.extend(spec.pop("buckets", [count]))
            point.negative.bucket_counts.extend(spec.pop("negative", []))
        elif kind == "histogram":
            spec.setdefault("count", 1)
            point.explicit_bounds.extend(spec.pop("bounds", [5.0, 20.0]))
            point.bucket_counts.extend(spec.pop("bucket_counts", [0, spec["count"], 0]))
        for field, value in spec.items():
            setattr(point, field, value)
    return request


def spans(
    service: str, specs: list[dict[str, Any]], *, resource: dict[str, Any] | None = None
) -> ExportTraceServiceRequest:
    """One resource of ``service`` with spans given as dicts (``trace``, ``span``, ``parent`` ints)."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    set_attributes(rs.resource.attributes, {"service.name": service, **(resource or {})})
    target = rs.scope_spans.add().spans
    for spec in specs:
        spec = dict(spec)
        span = target.add(
            trace_id=spec.pop("trace").to_bytes(16, "big"),
            span_id=spec.pop("span").to_bytes(8, "big"),
            kind=spec.pop("kind", 2),
            start_time_unix_nano=T0,
            end_time_unix_nano=T0 + spec.pop("ms", 10) * MS,
        )
        parent = spec.pop("parent", 0)
        if parent:
            span.parent_span_id = parent.to_bytes(8, "big")
        set_attributes(span.attributes, spec.pop("attributes", {}))
        if "status" in spec:
            span.status.code = spec.pop("status")
        assert not spec, f"unknown span fields {spec}"
    return request


def to_json_dict(message: Any) -> dict[str, Any]:
    """OTLP/JSON of a protobuf message: camelCase, int64 as strings, ids in hex (not base64)."""
    document: dict[str, Any] = json_format.MessageToDict(message)
    for rs in document.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return document


def to_json(message: Any) -> bytes:
    return orjson.dumps(to_json_dict(message))
