"""Decode OTLP trace exports (protobuf or JSON) into ``TraceBatch`` in one pass.

Malformed structure -> ``InvalidRequest`` (400). A span with a bad id is rejected on its
own and reported through partial success, the rest of the export is kept.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.errors import InvalidRequest
from collector.otlp_common import (
    Resource,
    as_int,
    encode_export_response,
    json_int,
    json_list,
    json_object,
    json_resources,
    json_value,
    pb_attributes,
)
from collector.records import Span, SpanGroup, TraceBatch

# Span attributes the graph reads. The old semconv name is accepted for status codes.
_HTTP_STATUS_KEYS = frozenset({"http.response.status_code", "http.status_code"})
_PEER_SERVICE = "peer.service"
_SERVER_ADDRESS = "server.address"
_WANTED = _HTTP_STATUS_KEYS | {_PEER_SERVICE, _SERVER_ADDRESS}

_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


def _check_ids(trace_id: bytes, span_id: bytes, parent: bytes) -> str:
    """Why the ids are invalid, or ``""`` (https://opentelemetry.io/docs/specs/otel/trace/api/#spancontext)."""
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        return "trace_id must be 16 bytes and not all zero"
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        return "span_id must be 8 bytes and not all zero"
    if parent and len(parent) != 8:
        return "parent_span_id must be empty or 8 bytes"
    return ""


def decode_protobuf(body: bytes) -> TraceBatch:
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise InvalidRequest(f"body is not a valid protobuf ExportTraceServiceRequest: {exc}") from None
    batch = TraceBatch()
    rejected = batch.rejected
    for resource_spans in request.resource_spans:
        resource = Resource(pb_attributes(resource_spans.resource.attributes))
        group = SpanGroup(resource.service, resource.version, resource.sidecar)
        spans = group.spans
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                batch.span_count += 1
                trace_id = span.trace_id
                span_id = span.span_id
                parent = span.parent_span_id
                problem = _check_ids(trace_id, span_id, parent)
                if problem:
                    rejected.add(problem)
                    continue
                http_status = 0
                peer = ""
                for kv in span.attributes:
                    key = kv.key
                    if key in _WANTED:
                        value = kv.value
                        if key == _PEER_SERVICE:
                            peer = value.string_value
                        elif key == _SERVER_ADDRESS:
                            peer = peer or value.string_value
                        else:
                            http_status = (
                                value.int_value if value.HasField("int_value") else as_int(value.string_value)
                            )
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                spans.append(
                    Span(
                        trace_id,
                        span_id,
                        parent,
                        span.kind,
                        (end - start) / 1e6 if end > start else 0.0,
                        span.status.code == 2,
                        http_status,
                        peer,
                    )
                )
        if spans:
            batch.groups.append(group)
    return batch


def decode_json(body: bytes) -> TraceBatch:
    batch = TraceBatch()
    for where, resource_spans, resource in json_resources(body, "ExportTraceServiceRequest", "resourceSpans"):
        group = SpanGroup(resource.service, resource.version, resource.sidecar)
        for s, scope_spans in enumerate(json_list(resource_spans, "scopeSpans", where)):
            scope_where = f"{where}.scopeSpans[{s}]"
            scope_spans = json_object(scope_spans, scope_where)
            for span in json_list(scope_spans, "spans", scope_where):
                batch.span_count += 1
                try:
                    decoded = _json_span(span)
                except (TypeError, ValueError, AttributeError, InvalidRequest) as exc:
                    batch.rejected.add(f"{scope_where}: invalid span: {exc}")
                    continue
                if isinstance(decoded, str):
                    batch.rejected.add(decoded)
                else:
                    group.spans.append(decoded)
        if group.spans:
            batch.groups.append(group)
    return batch


def _json_span(span: dict[str, Any]) -> Span | str:
    # bytes.fromhex raises ValueError on anything but hex, which also rejects base64 ids.
    trace_id = bytes.fromhex(span.get("traceId") or "")
    span_id = bytes.fromhex(span.get("spanId") or "")
    parent = bytes.fromhex(span.get("parentSpanId") or "")
    problem = _check_ids(trace_id, span_id, parent)
    if problem:
        return problem
    kind = span.get("kind", 0)
    if isinstance(kind, str):
        kind = _KIND_NAMES.get(kind, 0)
    status = span.get("status") or {}
    code = status.get("code", 0)
    if isinstance(code, str):
        code = _STATUS_NAMES.get(code, 0)
    http_status = 0
    peer = ""
    for kv in span.get("attributes") or ():
        key = kv.get("key")
        if key in _WANTED:
            value = json_value(kv.get("value"))
            if key == _PEER_SERVICE:
                peer = value if isinstance(value, str) else peer
            elif key == _SERVER_ADDRESS:
                peer = peer or (value if isinstance(value, str) else "")
            else:
                http_status = as_int(value)
    start = json_int(span.get("startTimeUnixNano"))
    end = json_int(span.get("endTimeUnixNano"))
    return Span(
        trace_id,
        span_id,
        parent,
        int(kind),
        (end - start) / 1e6 if end > start else 0.0,
        code == 2,
        http_status,
        peer,
    )


def encode_response(batch: TraceBatch, json: bool) -> bytes:
    """ExportTraceServiceResponse in the request's encoding (partial success if any rejected)."""
    return encode_export_response(batch.rejected, json, ExportTraceServiceResponse(), "rejected_spans")
