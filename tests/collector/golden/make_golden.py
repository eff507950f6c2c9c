"""Write the OTLP golden inputs (protobuf and OTLP/JSON) from one description.

Run from the repository root: ``python -m tests.collector.golden.make_golden``. The
expected graphs (``*.expected.json``) are written by the tests when UPDATE_GOLDEN=1 and
are reviewed by hand before committing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

HERE = Path(__file__).parent
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def tid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def sid(n: int) -> bytes:
    return n.to_bytes(8, "big")


# (service, version, sidecar, [spans]); span = (trace, span, parent, kind, ms, status, attrs)
TRACES: list[tuple[str, str, bool, list[tuple[Any, ...]]]] = [
    (
        "shop-web",
        "1.0.0",
        False,
        [
            (1, 0xA1, 0, 2, 30.0, 0, {"http.response.status_code": 200}),  # root server
            (1, 0xA2, 0xA1, 3, 12.0, 0, {"server.address": "shop-api"}),
            (2, 0xB2, 0, 3, 20.0, 0, {}),
            (3, 0xC2, 0, 3, 7.0, 2, {"peer.service": "payments"}),  # never answered: virtual edge
            (4, 0xD2, 0, 3, 5.0, 0, {}),  # never answered, no peer: only counted
        ],
    ),
    (
        "shop-api",
        "2.1.0",
        False,
        [
            (1, 0xA3, 0xA2, 2, 10.0, 0, {"http.response.status_code": 200}),
            (2, 0xB3, 0xB2, 2, 18.0, 0, {"http.response.status_code": 503}),  # 5xx: error
            (5, 0xE3, 0xE2, 2, 4.0, 0, {}),  # its client never arrives
            (0, 0xF3, 0, 2, 1.0, 0, {}),  # all-zero trace id: rejected
        ],
    ),
    (
        "frontend",
        "v1",
        True,
        [  # a sidecar's span: its edges come from metrics
            (6, 0x13, 0, 2, 1.0, 0, {}),
        ],
    ),
]


def pb_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def json_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 as a string, as the spec's examples do
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


def resource_attrs(service: str, version: str, sidecar: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "service.name": service,
        "service.version": version,
        "service.instance.id": f"{service}-1",
    }
    if sidecar:
        attrs["meshui.sidecar"] = True
    return attrs


def traces() -> tuple[bytes, bytes]:
    request = ExportTraceServiceRequest()
    doc: dict[str, Any] = {"resourceSpans": []}
    for service, version, sidecar, spans in TRACES:
        attrs = resource_attrs(service, version, sidecar)
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(KeyValue(key=k, value=pb_value(v)) for k, v in attrs.items())
        ss = rs.scope_spans.add()
        ss.scope.name = "golden"
        json_spans = []
        for trace, span, parent, kind, ms, status, span_attrs in spans:
            start = T0 + trace * 1000 * MS
            end = start + int(ms * MS)
            s = ss.spans.add(
                trace_id=tid(trace),
                span_id=sid(span),
                parent_span_id=sid(parent) if parent else b"",
                name=f"span {span:x}",
                kind=kind,
                start_time_unix_nano=start,
                end_time_unix_nano=end,
            )
            s.status.code = status
            s.attributes.extend(KeyValue(key=k, value=pb_value(v)) for k, v in span_attrs.items())
            json_span: dict[str, Any] = {
                "traceId": tid(trace).hex(),
                "spanId": sid(span).hex(),
                "name": f"span {span:x}",
                "kind": kind,
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(end),
                "attributes": [{"key": k, "value": json_value(v)} for k, v in span_attrs.items()],
                "status": {"code": status} if status else {},
            }
            if parent:
                json_span["parentSpanId"] = sid(parent).hex()
            json_spans.append(json_span)
        doc["resourceSpans"].append(
            {
                "resource": {"attributes": [{"key": k, "value": json_value(v)} for k, v in attrs.items()]},
                "scopeSpans": [{"scope": {"name": "golden"}, "spans": json_spans}],
            }
        )
    return request.SerializeToString(), orjson.dumps(doc, option=orjson.OPT_INDENT_2)


# Sidecar histogram points: (resource service, attrs, count, scale, offset, buckets, zero)
POINTS: list[tuple[str, dict[str, Any], int, int, int, list[int], int]] = [
    (
        "frontend",
        {
            "meshui.direction": "outbound",
            "source.service": "frontend",
            "destination.service": "catalog",
            "destination.version": "v2",
            "http.response.status_code": 200,
        },
        10,
        3,
        40,
        [2, 5, 3],
        0,
    ),
    (
        "frontend",
        {
            "meshui.direction": "outbound",
            "source.service": "frontend",
            "destination.service": "catalog",
            "destination.version": "v2",
            "http.response.status_code": 503,
        },
        2,
        5,
        170,
        [2],
        0,
    ),  # finer scale
    (
        "frontend",
        {
            "meshui.direction": "outbound",
            "source.service": "frontend",
            "destination.service": "catalog",
            "destination.version": "v1",
            "http.response.status_code": 200,
        },
        6,
        3,
        38,
        [6],
        0,
    ),  # the same edge's other version: the observed split
    (
        "frontend",
        {
            "meshui.direction": "outbound",
            "source.service": "frontend",
            "destination.service": "catalog",
            "destination.version": "",
            "http.response.status_code": 503,
        },
        2,
        3,
        30,
        [2],
        0,
    ),  # no instance answered: in the edge's totals, in no version
    (
        "frontend",
        {
            "meshui.direction": "inbound",
            "source.service": "unknown",
            "destination.service": "frontend",
            "destination.version": "v1",
            "http.response.status_code": 200,
            "meshui.source.sidecar": False,
        },
        5,
        0,
        4,
        [3, 1],
        1,
    ),  # coarser scale, one zero
    (
        "catalog",
        {
            "meshui.direction": "inbound",
            "source.service": "frontend",
            "destination.service": "catalog",
            "destination.version": "v2",
            "http.response.status_code": 200,
            "meshui.source.sidecar": True,
        },
        12,
        3,
        41,
        [6, 6],
        0,
    ),
    (
        "catalog",
        {"meshui.direction": "sideways", "destination.service": "catalog"},
        1,
        3,
        0,
        [1],
        0,
    ),  # rejected: bad direction
]


def metrics() -> tuple[bytes, bytes]:
    request = ExportMetricsServiceRequest()
    doc: dict[str, Any] = {"resourceMetrics": []}
    for service in ("frontend", "catalog"):
        attrs = resource_attrs(service, "v1", True)
        rm = request.resource_metrics.add()
        rm.resource.attributes.extend(KeyValue(key=k, value=pb_value(v)) for k, v in attrs.items())
        metric = rm.scope_metrics.add().metrics.add(name="meshui.proxy.request.duration", unit="ms")
        metric.exponential_histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
        other = rm.scope_metrics[0].metrics.add(name="meshui.proxy.active_requests")
        other.gauge.data_points.add(as_int=3)  # not ours: received, ignored
        json_points = []
        for owner, point_attrs, count, scale, offset, buckets, zero in POINTS:
            if owner != service:
                continue
            p = metric.exponential_histogram.data_points.add(
                start_time_unix_nano=T0,
                time_unix_nano=T0 + 1000 * MS,
                count=count,
                scale=scale,
                zero_count=zero,
            )
            p.attributes.extend(KeyValue(key=k, value=pb_value(v)) for k, v in point_attrs.items())
            p.positive.offset = offset
            p.positive.bucket_counts.extend(buckets)
            json_points.append(
                {
                    "attributes": [{"key": k, "value": json_value(v)} for k, v in point_attrs.items()],
                    "startTimeUnixNano": str(T0),
                    "timeUnixNano": str(T0 + 1000 * MS),
                    "count": str(count),
                    "scale": scale,
                    "zeroCount": str(zero),
                    "positive": {"offset": offset, "bucketCounts": [str(b) for b in buckets]},
                }
            )
        doc["resourceMetrics"].append(
            {
                "resource": {"attributes": [{"key": k, "value": json_value(v)} for k, v in attrs.items()]},
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "meshui.proxy.request.duration",
                                "unit": "ms",
                                "exponentialHistogram": {
                                    "aggregationTemporality": 1,
                                    "dataPoints": json_points,
                                },
                            },
                            {
                                "name": "meshui.proxy.active_requests",
                                "gauge": {"dataPoints": [{"asInt": "3"}]},
                            },
                        ]
                    }
                ],
            }
        )
    return request.SerializeToString(), orjson.dumps(doc, option=orjson.OPT_INDENT_2)


# Sidecar policy counters: (resource service, metric, temporality, [(attrs, value)]).
DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
OUT = {"source.service": "frontend", "destination.service": "catalog"}
COUNTERS: list[tuple[str, str, int, list[tuple[dict[str, Any], int]]]] = [
    ("frontend", "meshui.proxy.request.duration", DELTA, []),  # the edge's requests: below
    ("frontend", "meshui.proxy.retries", DELTA, [(OUT, 3)]),
    (
        "frontend",
        "meshui.proxy.timeouts",
        DELTA,
        [({**OUT, "meshui.kind": "per-try"}, 2), ({**OUT, "meshui.kind": "connect"}, 1)],
    ),
    ("frontend", "meshui.proxy.overflows", DELTA, [({**OUT, "meshui.limit": "max_requests"}, 1)]),
    ("frontend", "meshui.proxy.faults", DELTA, [({**OUT, "meshui.kind": "delay"}, 4)]),
    ("frontend", "meshui.proxy.ejections", DELTA, [(OUT, 1)]),
    ("frontend", "meshui.proxy.retry_budget.exhausted", DELTA, [(OUT, 0)]),  # zero: no field
    # An edge known only by what policy did: no request to ratings ended in this interval.
    (
        "frontend",
        "meshui.proxy.rate_limited",
        DELTA,
        [
            (
                {
                    "source.service": "frontend",
                    "destination.service": "ratings",
                    "meshui.scope": "destination",
                    "meshui.direction": "outbound",
                },
                1,
            )
        ],
    ),
    ("frontend", "meshui.proxy.not_yet_known", DELTA, [(OUT, 9)]),  # received, ignored
    ("frontend", "meshui.proxy.retries", CUMULATIVE, [(OUT, 5)]),  # rejected: not delta
    ("frontend", "meshui.proxy.faults", DELTA, [({"source.service": "frontend"}, 1)]),  # rejected
    # The callee's own inbound limit on its caller lands on the same edge.
    (
        "catalog",
        "meshui.proxy.rate_limited",
        DELTA,
        [
            (
                {
                    "source.service": "frontend",
                    "destination.service": "catalog",
                    "meshui.scope": "source",
                    "meshui.direction": "inbound",
                },
                2,
            )
        ],
    ),
    ("shop-api", "meshui.proxy.retries", DELTA, [(OUT, 7)]),  # not a sidecar: ignored
]


def policy_counters() -> tuple[bytes, bytes]:
    """Sidecar policy counters (delta sums) next to one request histogram point."""
    request = ExportMetricsServiceRequest()
    doc: dict[str, Any] = {"resourceMetrics": []}
    for service, sidecar in (("frontend", True), ("catalog", True), ("shop-api", False)):
        attrs = resource_attrs(service, "v1", sidecar)
        rm = request.resource_metrics.add()
        rm.resource.attributes.extend(KeyValue(key=k, value=pb_value(v)) for k, v in attrs.items())
        scope = rm.scope_metrics.add()
        json_metrics: list[dict[str, Any]] = []
        for owner, name, temporality, points in COUNTERS:
            if owner != service:
                continue
            if name == "meshui.proxy.request.duration":
                metric = scope.metrics.add(name=name, unit="ms")
                metric.exponential_histogram.aggregation_temporality = temporality
                point_attrs = {
                    "meshui.direction": "outbound",
                    **OUT,
                    "destination.version": "v1",
                    "http.response.status_code": 200,
                }
                p = metric.exponential_histogram.data_points.add(
                    start_time_unix_nano=T0, time_unix_nano=T0 + 1000 * MS, count=4, scale=3
                )
                p.attributes.extend(KeyValue(key=k, value=pb_value(v)) for k, v in point_attrs.items())
                p.positive.offset = 40
                p.positive.bucket_counts.extend([4])
                json_metrics.append(
                    {
                        "name": name,
                        "unit": "ms",
                        "exponentialHistogram": {
                            "aggregationTemporality": temporality,
                            "dataPoints": [
                                {
                                    "attributes": [
                                        {"key": k, "value": json_value(v)} for k, v in point_attrs.items()
                                    ],
                                    "startTimeUnixNano": str(T0),
                                    "timeUnixNano": str(T0 + 1000 * MS),
                                    "count": "4",
                                    "scale": 3,
                                    "positive": {"offset": 40, "bucketCounts": ["4"]},
                                }
                            ],
                        },
                    }
                )
                continue
            metric = scope.metrics.add(name=name, unit="1")
            metric.sum.aggregation_temporality = temporality
            metric.sum.is_monotonic = True
            json_points = []
            for point_attrs, value in points:
                p = metric.sum.data_points.add(
                    start_time_unix_nano=T0, time_unix_nano=T0 + 1000 * MS, as_int=value
                )
                p.attributes.extend(KeyValue(key=k, value=pb_value(v)) for k, v in point_attrs.items())
                json_points.append(
                    {
                        "attributes": [{"key": k, "value": json_value(v)} for k, v in point_attrs.items()],
                        "startTimeUnixNano": str(T0),
                        "timeUnixNano": str(T0 + 1000 * MS),
                        "asInt": str(value),
                    }
                )
            json_metrics.append(
                {
                    "name": name,
                    "unit": "1",
                    "sum": {
                        "aggregationTemporality": temporality,
                        "isMonotonic": True,
                        "dataPoints": json_points,
                    },
                }
            )
        doc["resourceMetrics"].append(
            {
                "resource": {"attributes": [{"key": k, "value": json_value(v)} for k, v in attrs.items()]},
                "scopeMetrics": [{"metrics": json_metrics}],
            }
        )
    return request.SerializeToString(), orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def main() -> None:
    pb, js = traces()
    (HERE / "traces.pb").write_bytes(pb)
    (HERE / "traces.json").write_bytes(js + b"\n")
    pb, js = metrics()
    (HERE / "sidecar_metrics.pb").write_bytes(pb)
    (HERE / "sidecar_metrics.json").write_bytes(js + b"\n")
    pb, js = policy_counters()
    (HERE / "sidecar_policy_counters.pb").write_bytes(pb)
    (HERE / "sidecar_policy_counters.json").write_bytes(js + b"\n")


if __name__ == "__main__":
    main()
