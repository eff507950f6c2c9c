"""Decode OTLP trace exports (protobuf or JSON) into ``TraceBatch`` in one pass.

Malformed structure -> ``InvalidRequest`` (400). A span with a bad id is rejected on its
own and reported through partial success, the rest of the export is kept.
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector import validation
from collector.errors import InvalidRequest
from collector.otlp_common import (
    Resource,
    encode_export_response,
    is_true,
    json_attributes,
    json_list,
    json_object,
    json_resources,
    pb_attributes,
    pb_value,
)
from collector.records import RAW_JSON, Span, SpanGroup, TraceBatch
from collector.validation import Rejected

# Span attributes the graph reads. The old semconv name is accepted for status codes.
_HTTP_STATUS_KEYS = frozenset({"http.response.status_code", "http.status_code"})
_PEER_SERVICE = "peer.service"
_SERVER_ADDRESS = "server.address"
# ... and those the trace store's summary reads (collector.tracesummary). The operation is
# "<method> <http.route>" when the span has a route, else its name.
_METHOD = "http.request.method"
_OLD_METHOD = "http.method"
_ROUTE = "http.route"
_DESTINATION = "destination.service"  # a sidecar's CLIENT span names its callee so
KEEP_ATTRIBUTE = "meshui.keep"  # true: keep the span's trace in preference (docs/collector.md)
_WANTED = _HTTP_STATUS_KEYS | {
    _PEER_SERVICE, _SERVER_ADDRESS, _METHOD, _OLD_METHOD, _ROUTE, _DESTINATION, KEEP_ATTRIBUTE}

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
# What a malformed OTLP/JSON span can raise while being read: it rejects that span only.
_SPAN_ERRORS = (InvalidRequest, TypeError, ValueError, AttributeError, OverflowError, KeyError)


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
        if resource.problem:
            spans_here = sum(len(scope_spans.spans) for scope_spans in resource_spans.scope_spans)
            batch.span_count += spans_here
            rejected.add(resource.problem, spans_here)
            continue
        group = SpanGroup(resource.service, resource.version, resource.sidecar, instance=resource.instance)
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
                peer = method = route = destination = ""
                keep = False
                try:
                    for kv in span.attributes:
                        key = kv.key
                        if key in _WANTED:
                            value = kv.value
                            if key == _PEER_SERVICE:
                                peer = validation.name(value.string_value, "peer.service", required=False)
                            elif key == _SERVER_ADDRESS:
                                address = validation.name(
                                    value.string_value, "server.address", required=False
                                )
                                peer = peer or address
                            elif key == _METHOD:
                                method = value.string_value
                            elif key == _OLD_METHOD:
                                method = method or value.string_value
                            elif key == _ROUTE:
                                route = value.string_value
                            elif key == _DESTINATION:
                                destination = value.string_value
                            elif key == KEEP_ATTRIBUTE:
                                keep = is_true(pb_value(value))
                            else:
                                http_status = validation.http_status(pb_value(value), key)
                except Rejected as exc:
                    rejected.add(f"span attribute {exc}")
                    continue
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
                        start,
                        f"{method} {route}" if route and method else route or span.name,
                        keep,
                        destination,
                        # The whole span for the trace store, decoded only when read.
                        span.SerializeToString(),
                        end_ns=end,
                    )
                )
                if keep:
                    batch.keep_trace_ids.append(trace_id)
        if spans:
            batch.groups.append(group)
    return batch


def decode_json(body: bytes) -> TraceBatch:
    batch = TraceBatch()
    for where, resource_spans, resource in json_resources(body, "ExportTraceServiceRequest", "resourceSpans"):
        group = SpanGroup(resource.service, resource.version, resource.sidecar, instance=resource.instance)
        for s, scope_spans in enumerate(json_list(resource_spans, "scopeSpans", where)):
            scope_where = f"{where}.scopeSpans[{s}]"
            scope_spans = json_object(scope_spans, scope_where)
            for span in json_list(scope_spans, "spans", scope_where):
                batch.span_count += 1
                if resource.problem:
                    batch.rejected.add(resource.problem)
                    continue
                try:
                    decoded = _json_span(json_object(span, "span"))
                except _SPAN_ERRORS as exc:
                    batch.rejected.add(f"{scope_where}: invalid span: {exc}")
                    continue
                if isinstance(decoded, str):
                    batch.rejected.add(decoded)
                else:
                    group.spans.append(decoded)
                    if decoded.keep:
                        batch.keep_trace_ids.append(decoded.trace_id)
        if group.spans:
            batch.groups.append(group)
    return batch


def _json_span(span: dict[str, Any]) -> Span | str:
    # Exactly 32 / 16 hex digits: bytes.fromhex alone would skip spaces, and base64 ids
    # (what protobuf's json_format writes) are refused rather than misread.
    trace_id = validation.json_hex_id(span.get("traceId"), 16, "traceId")
    span_id = validation.json_hex_id(span.get("spanId"), 8, "spanId")
    parent = validation.json_hex_id(span.get("parentSpanId"), 8, "parentSpanId")
    problem = _check_ids(trace_id, span_id, parent)
    if problem:
        return problem
    kind = validation.json_enum(span.get("kind", 0), _KIND_NAMES, "kind")
    status = span.get("status") or {}
    if not isinstance(status, dict):
        raise Rejected("status must be an object")
    code = validation.json_enum(status.get("code", 0), _STATUS_NAMES, "status.code")
    attributes = json_attributes(span.get("attributes"), "span")
    http_status = 0
    for key in ("http.status_code", "http.response.status_code"):  # the current name wins
        if attributes.get(key) is not None:
            http_status = validation.http_status(attributes[key], key)
    peer = attributes.get(_PEER_SERVICE)
    peer = validation.name(peer, _PEER_SERVICE, required=False) if isinstance(peer, str) else ""
    if not peer:
        address = attributes.get(_SERVER_ADDRESS)
        peer = validation.name(address, _SERVER_ADDRESS, required=False) if isinstance(address, str) else ""
    start = validation.json_int(span.get("startTimeUnixNano"), "startTimeUnixNano")
    end = validation.json_int(span.get("endTimeUnixNano"), "endTimeUnixNano")
    method = attributes.get(_METHOD) or attributes.get(_OLD_METHOD)
    route = attributes.get(_ROUTE)
    name = span.get("name")
    if isinstance(route, str) and route:
        operation = f"{method} {route}" if isinstance(method, str) and method else route
    else:
        operation = name if isinstance(name, str) else ""
    destination = attributes.get(_DESTINATION)
    return Span(
        trace_id,
        span_id,
        parent,
        kind,
        (end - start) / 1e6 if end > start else 0.0,
        code == 2,
        http_status,
        peer,
        start,
        operation,
        is_true(attributes.get(KEEP_ATTRIBUTE)),
        destination if isinstance(destination, str) else "",
        orjson.dumps(span),
        RAW_JSON,
        end_ns=end,
    )


def encode_response(batch: TraceBatch, json: bool) -> bytes:
    """ExportTraceServiceResponse in the request's encoding (partial success if any rejected)."""
    return encode_export_response(batch.rejected, json, ExportTraceServiceResponse(), "rejected_spans")
