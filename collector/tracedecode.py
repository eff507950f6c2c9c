"""A stored trace's spans as the API's JSON: decoded only when someone opens the trace.

The store keeps each span as the bytes it arrived in (``collector.records.RAW_PROTOBUF`` or
``RAW_JSON``, records of ``collector.tracesummary``). Here both become one shape: ids in hex,
times in epoch seconds and in milliseconds from the trace's first span, kind and status as
names, attributes and events with their values as JSON values. Everything in a span is
untrusted: a field of the wrong type reads as absent, never as an error, and names are
returned as data (the pages escape them).

The spans come back in tree order: each parent before its children, siblings by start,
with their ``depth``. A span whose parent is not in the trace (not sampled, evicted, in
another collector) is a root with ``parent_missing`` set; spans caught in a parent cycle
come last, as roots. A span stored twice (an export sent again) is shown once.
"""

from __future__ import annotations

import base64
import math
from typing import Any, TypedDict

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from collector.records import RAW_JSON, RAW_PROTOBUF
from collector.tracesummary import unpack_records

KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUSES = ("unset", "ok", "error")
_KIND_NAMES = {f"SPAN_KIND_{name.upper()}": code for code, name in enumerate(KINDS)}
_STATUS_NAMES = {f"STATUS_CODE_{name.upper()}": code for code, name in enumerate(STATUSES)}
_HEX = frozenset("0123456789abcdef")


class EventJSON(TypedDict):
    name: str
    time: float  # epoch seconds
    offset_ms: float  # from the trace's first span
    attributes: dict[str, Any]


class LinkJSON(TypedDict):
    trace_id: str
    span_id: str
    attributes: dict[str, Any]


class SpanJSON(TypedDict):
    span_id: str
    parent_span_id: str | None
    parent_missing: bool
    depth: int
    service: str
    version: str
    name: str
    kind: str
    start: float  # epoch seconds
    offset_ms: float  # from the trace's first span
    duration_ms: float
    status: str
    status_message: str
    attributes: dict[str, Any]
    events: list[EventJSON]
    links: list[LinkJSON]


def _number(value: float) -> Any:
    """JSON has no NaN or infinity: those are given as their names."""
    return value if math.isfinite(value) else str(value)


def pb_any(value: Any) -> Any:
    """An OTLP AnyValue (protobuf) as a JSON value; bytes as base64, as OTLP/JSON writes them."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return _number(value.double_value)
    if kind == "array_value":
        return [pb_any(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: pb_any(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def json_any(value: Any, depth: int = 0) -> Any:
    """An OTLP/JSON AnyValue as a JSON value (malformed -> None)."""
    if not isinstance(value, dict) or depth > 64:
        return None
    for kind, inner in value.items():
        if kind in ("stringValue", "boolValue", "bytesValue"):
            return inner if isinstance(inner, (str, bool)) else None
        if kind == "intValue":
            try:
                return int(inner) if isinstance(inner, (int, str)) and not isinstance(inner, bool) else None
            except ValueError:
                return None
        if kind == "doubleValue":
            if isinstance(inner, str):  # "NaN", "Infinity" in OTLP/JSON
                return inner
            return _number(float(inner)) if isinstance(inner, (int, float)) else None
        if kind == "arrayValue":
            items = inner.get("values") if isinstance(inner, dict) else None
            return [json_any(item, depth + 1) for item in items] if isinstance(items, list) else []
        if kind == "kvlistValue":
            items = inner.get("values") if isinstance(inner, dict) else None
            return json_attributes(items, depth + 1)
    return None


def json_attributes(items: Any, depth: int = 0) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    return {kv["key"]: json_any(kv.get("value"), depth) for kv in items
            if isinstance(kv, dict) and isinstance(kv.get("key"), str)}


def _hex(value: Any, length: int) -> str:
    if isinstance(value, str) and len(value) == length:
        lower = value.lower()
        if set(lower) <= _HEX:
            return lower
    return ""


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def _enum(value: Any, names: dict[str, int], count: int) -> int:
    if isinstance(value, str):
        value = names.get(value, 0)
    return value if isinstance(value, int) and 0 <= value < count else 0


def _raw_protobuf(data: bytes) -> dict[str, Any] | None:
    try:
        span = PbSpan.FromString(data)
    except DecodeError:
        return None
    return {
        "span_id": span.span_id.hex(), "parent": span.parent_span_id.hex(), "name": span.name,
        "kind": span.kind, "start_ns": span.start_time_unix_nano, "end_ns": span.end_time_unix_nano,
        "status": span.status.code, "status_message": span.status.message,
        "attributes": {kv.key: pb_any(kv.value) for kv in span.attributes},
        "events": [(event.name, event.time_unix_nano, {kv.key: pb_any(kv.value) for kv in event.attributes})
                   for event in span.events],
        "links": [{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                   "attributes": {kv.key: pb_any(kv.value) for kv in link.attributes}}
                  for link in span.links],
    }


def _raw_json(data: bytes) -> dict[str, Any] | None:
    try:
        span = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(span, dict):
        return None
    status: dict[str, Any] = span["status"] if isinstance(span.get("status"), dict) else {}
    events: list[Any] = span["events"] if isinstance(span.get("events"), list) else []
    links: list[Any] = span["links"] if isinstance(span.get("links"), list) else []
    name = span.get("name")
    message = status.get("message")
    return {
        "span_id": _hex(span.get("spanId"), 16), "parent": _hex(span.get("parentSpanId"), 16),
        "name": name if isinstance(name, str) else "",
        "kind": _enum(span.get("kind", 0), _KIND_NAMES, len(KINDS)),
        "start_ns": _int(span.get("startTimeUnixNano")), "end_ns": _int(span.get("endTimeUnixNano")),
        "status": _enum(status.get("code", 0), _STATUS_NAMES, len(STATUSES)),
        "status_message": message if isinstance(message, str) else "",
        "attributes": json_attributes(span.get("attributes")),
        "events": [(event.get("name") if isinstance(event.get("name"), str) else "",
                    _int(event.get("timeUnixNano")), json_attributes(event.get("attributes")))
                   for event in events if isinstance(event, dict)],
        "links": [{"trace_id": _hex(link.get("traceId"), 32), "span_id": _hex(link.get("spanId"), 16),
                   "attributes": json_attributes(link.get("attributes"))}
                  for link in links if isinstance(link, dict)],
    }


def decode_spans(blob: bytes) -> list[SpanJSON]:
    """The spans of a trace's blob, in tree order (see the module's docstring)."""
    decoded: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for encoding, service, version, data in unpack_records(blob):
        span = _raw_protobuf(data) if encoding == RAW_PROTOBUF else _raw_json(data) \
            if encoding == RAW_JSON else None
        if span is not None and span["span_id"] and span["span_id"] not in decoded:
            decoded[span["span_id"]] = (service, version, span)
    if not decoded:
        return []
    first_ns = min((s["start_ns"] for _, _, s in decoded.values() if s["start_ns"]), default=0)
    children: dict[str, list[str]] = {}
    roots = []
    for span_id, (_, _, span) in decoded.items():
        parent = span["parent"]
        if parent and parent in decoded and parent != span_id:
            children.setdefault(parent, []).append(span_id)
        else:
            roots.append(span_id)

    def by_start(span_id: str) -> tuple[int, str]:
        return decoded[span_id][2]["start_ns"], span_id

    ordered: list[SpanJSON] = []
    seen: set[str] = set()

    def walk(start: list[str]) -> None:
        stack = [(span_id, 0) for span_id in sorted(start, key=by_start, reverse=True)]
        while stack:
            span_id, depth = stack.pop()
            if span_id in seen:
                continue
            seen.add(span_id)
            ordered.append(_span_json(span_id, depth, decoded[span_id], first_ns))
            kids = sorted(children.get(span_id, ()), key=by_start, reverse=True)
            stack.extend((kid, depth + 1) for kid in kids)

    walk(roots)
    walk([span_id for span_id in decoded if span_id not in seen])  # parent cycles
    return ordered


def _span_json(span_id: str, depth: int, entry: tuple[str, str, dict[str, Any]], first_ns: int) -> SpanJSON:
    service, version, span = entry
    start_ns, end_ns, parent = span["start_ns"], span["end_ns"], span["parent"]
    return {
        "span_id": span_id,
        "parent_span_id": parent or None,
        "parent_missing": bool(parent) and depth == 0,
        "depth": depth,
        "service": service,
        "version": version,
        "name": span["name"],
        "kind": KINDS[span["kind"]] if 0 <= span["kind"] < len(KINDS) else KINDS[0],
        "start": start_ns / 1e9,
        "offset_ms": round((start_ns - first_ns) / 1e6, 3) if start_ns else 0.0,
        "duration_ms": round((end_ns - start_ns) / 1e6, 3) if end_ns > start_ns else 0.0,
        "status": STATUSES[span["status"]] if 0 <= span["status"] < len(STATUSES) else STATUSES[0],
        "status_message": span["status_message"],
        "attributes": span["attributes"],
        "events": [{"name": name, "time": time_ns / 1e9,
                    "offset_ms": round((time_ns - first_ns) / 1e6, 3) if time_ns else 0.0,
                    "attributes": attributes} for name, time_ns, attributes in span["events"]],
        "links": span["links"],
    }
