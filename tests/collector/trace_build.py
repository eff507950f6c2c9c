"""Build OTLP trace exports for the trace store's tests: spans described by keyword, grouped
by service into resources, and the store pipeline (connector -> exporter) on a real Redis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector import otlp_traces
from collector.records import TraceBatch
from tests.collector.otlp_build import set_attributes

SERVER, CLIENT, INTERNAL = 2, 3, 1
MS = 1_000_000


def trace_id(n: int) -> bytes:
    return (n + 1).to_bytes(16, "big")


def span_id(n: int) -> bytes:
    return (n + 1).to_bytes(8, "big")


@dataclass
class S:
    """One span to export: ``trace``, ``span`` and ``parent`` are small integers (0: no parent)."""

    service: str
    trace: int
    span: int
    parent: int = 0
    kind: int = SERVER
    name: str = "GET /"
    start_s: float = 1_700_000_000.0
    ms: float = 5.0
    error: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)
    version: str = ""


def export(*spans: S) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resources: dict[tuple[str, str], Any] = {}
    for s in spans:
        scope = resources.get((s.service, s.version))
        if scope is None:
            rs = request.resource_spans.add()
            set_attributes(rs.resource.attributes, {"service.name": s.service,
                                                    **({"service.version": s.version} if s.version else {})})
            scope = resources[s.service, s.version] = rs.scope_spans.add()
        start = int(s.start_s * 1e9)
        span = scope.spans.add(
            trace_id=trace_id(s.trace), span_id=span_id(s.span),
            parent_span_id=span_id(s.parent) if s.parent else b"", name=s.name, kind=s.kind,
            start_time_unix_nano=start, end_time_unix_nano=start + int(s.ms * MS))
        if s.error:
            span.status.code = 2
            span.status.message = "boom"
        set_attributes(span.attributes, s.attributes)
        for name, at_s, attributes in s.events:
            event = span.events.add(name=name, time_unix_nano=int(at_s * 1e9))
            set_attributes(event.attributes, attributes)
    return request


def batch(*spans: S) -> TraceBatch:
    return otlp_traces.decode_protobuf(export(*spans).SerializeToString())
