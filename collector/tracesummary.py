"""What the trace store keeps of one trace: its spans' bytes and a summary to search by.

Pure. ``summarize`` takes the spans of one trace that reached this collector together (a
``chunk``: everything that arrived within ``TraceStoreConfig.wait_s`` of the first one) and
returns a ``TraceChunk``: the spans packed into one blob, and the summary the search reads
(start, duration, services, edges, operations, error, the longest span). The tier (kept or
common) is decided by ``collector.traceconnector`` from the chunk's edge calls.

Edges are made the way span pairing makes them (docs/collector.md), within the chunk: a
SERVER span whose parent is a CLIENT span of the chunk is a call ``client service -> server
service``; a root SERVER span is a call ``unknown -> service``; a CLIENT span with no SERVER
child is a call to its ``destination.service`` (a sidecar's), else its peer. Unlike pairing,
sidecar spans count: in the trace store they are the main source.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from collector import validation
from collector.graphstore import UNKNOWN
from collector.records import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_CONSUMER,
    SPAN_KIND_PRODUCER,
    SPAN_KIND_SERVER,
    Span,
)

# Bounds on what one trace's summary lists: names come from the network, and each listed
# name is an index entry in Redis. What passes a bound is left out of the summary (the spans
# are all kept); ``truncated`` says so.
MAX_SERVICES = 32
MAX_EDGES = 64
MAX_OPERATIONS = 32
MAX_OPERATION_LENGTH = 128
# An edge's name in the store: "<source>\x1f<target>" (service names hold no control character).
EDGE_SEP = "\x1f"

_SERVER_KINDS = frozenset({SPAN_KIND_SERVER, SPAN_KIND_CONSUMER})
_CLIENT_KINDS = frozenset({SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER})

# One record of a trace's blob: encoding (1 byte), header length (2 bytes), header
# ("<service>\x1f<version>", UTF-8), span length (4 bytes), span. ``collector.tracedecode``
# reads it back.
_HEAD = struct.Struct(">cH")
_LENGTH = struct.Struct(">I")


def record_prefix(encoding: str, service: str, version: str) -> bytes:
    """The bytes that open every record of one resource's spans (all but the span's length)."""
    header = f"{service}{EDGE_SEP}{version}".encode()
    return _HEAD.pack(encoding.encode(), len(header)) + header


def pack_record(prefix: bytes, raw: bytes) -> bytes:
    return prefix + _LENGTH.pack(len(raw)) + raw


def unpack_records(blob: bytes) -> list[tuple[str, str, str, bytes]]:
    """(encoding, service, version, span bytes) of each record, in order; a torn tail is skipped."""
    records = []
    at, end = 0, len(blob)
    while at + 3 <= end:
        encoding, header_length = _HEAD.unpack_from(blob, at)
        at += 3
        header = blob[at : at + header_length]
        at += header_length
        if at + 4 > end:
            break
        (length,) = _LENGTH.unpack_from(blob, at)
        at += 4
        if at + length > end:
            break
        service, _, version = header.decode(errors="replace").partition(EDGE_SEP)
        records.append((encoding.decode(errors="replace"), service, version, blob[at : at + length]))
        at += length
    return records


@dataclass(slots=True)
class TraceChunk:
    """One trace's spans as this collector stores them in one write, with their summary."""

    trace_id: bytes
    start_us: int  # earliest span start, epoch microseconds
    duration_us: int  # the root span's duration, else the longest span's
    has_root: bool
    max_us: int  # the longest span
    error: bool
    span_count: int
    services: list[str]
    edges: list[str]  # "<source>\x1f<target>"
    operations: list[str]
    root_service: str
    root_operation: str
    blob: bytes
    # (edge, duration ms) of each call in the chunk, for the per-edge slowness tracker.
    calls: list[tuple[str, float]] = field(default_factory=list)
    kept: bool = False
    truncated: bool = False

    @property
    def size(self) -> int:
        return len(self.blob)


def _failed(span: Span) -> bool:
    return span.failed or span.http_status >= 500


def _peer(span: Span) -> str:
    destination = span.destination
    if destination:
        try:
            return validation.name(destination, "destination.service", required=False)
        except validation.Rejected:
            pass  # untrusted: an unusable name only loses the edge
    return span.peer


def summarize(trace_id: bytes, spans: Sequence[tuple[bytes, str, Span]]) -> TraceChunk:
    """The chunk of ``spans``: (record prefix, service, span) of one trace, in arrival order."""
    by_id: dict[bytes, tuple[str, Span]] = {}
    for _, service, span in spans:
        by_id[span.span_id] = (service, span)
    services: dict[str, None] = {}
    edges: dict[str, None] = {}
    operations: dict[str, None] = {}
    calls: list[tuple[str, float]] = []
    answered: set[bytes] = set()  # CLIENT spans that a SERVER span of the chunk answered
    start_ns = 0
    max_ns = 0
    error = False
    root: Span | None = None
    root_service = ""
    truncated = False
    parts = []
    for prefix, service, span in spans:
        parts.append(pack_record(prefix, span.raw))
        if not start_ns or 0 < span.start_ns < start_ns:
            start_ns = span.start_ns
        duration_ns = int(span.duration_ms * 1e6)
        if duration_ns > max_ns:
            max_ns = duration_ns
        error = error or _failed(span)
        services[service] = None
        kind = span.kind
        if kind in _SERVER_KINDS or not span.parent_span_id:
            operation = span.operation[:MAX_OPERATION_LENGTH]
            if operation:
                operations[operation] = None
        if not span.parent_span_id and (root is None or span.start_ns < root.start_ns):
            root, root_service = span, service
        if kind in _SERVER_KINDS:
            parent = by_id.get(span.parent_span_id) if span.parent_span_id else None
            if parent is not None and parent[1].kind in _CLIENT_KINDS:
                answered.add(span.parent_span_id)
                edge = f"{parent[0]}{EDGE_SEP}{service}"
                calls.append((edge, parent[1].duration_ms))
                edges[edge] = None
            elif not span.parent_span_id:
                edge = f"{UNKNOWN}{EDGE_SEP}{service}"
                calls.append((edge, span.duration_ms))
                edges[edge] = None
    for _, service, span in spans:
        if span.kind in _CLIENT_KINDS and span.span_id not in answered:
            peer = _peer(span)
            if peer:
                edge = f"{service}{EDGE_SEP}{peer}"
                calls.append((edge, span.duration_ms))
                edges[edge] = None
    listed_services, listed_edges, listed_operations = list(services), list(edges), list(operations)
    if (len(listed_services) > MAX_SERVICES or len(listed_edges) > MAX_EDGES
            or len(listed_operations) > MAX_OPERATIONS):
        truncated = True
    duration_ns = int(root.duration_ms * 1e6) if root is not None else max_ns
    return TraceChunk(
        trace_id=trace_id,
        start_us=start_ns // 1000,
        duration_us=duration_ns // 1000,
        has_root=root is not None,
        max_us=max_ns // 1000,
        error=error,
        span_count=len(spans),
        services=listed_services[:MAX_SERVICES],
        edges=listed_edges[:MAX_EDGES],
        operations=listed_operations[:MAX_OPERATIONS],
        root_service=root_service,
        root_operation=root.operation[:MAX_OPERATION_LENGTH] if root is not None else "",
        blob=b"".join(parts),
        calls=calls,
        truncated=truncated,
    )
