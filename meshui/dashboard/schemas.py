"""The live graph's JSON as API schemas: the shape of ``collector.graphstore.GraphJSON``.

The graph store types its output with ``typing.TypedDict``s, which pydantic cannot read on
Python 3.11, so the shapes are restated here as schemas, field for field and in the order
the store writes them (tests/meshui/test_api_schema.py fails when the two disagree). A new
graph metric is a field in the TypedDict and here, and a line in ``figure.py`` to show it;
a new edge event is a line in ``proxies.telemetry.events`` and nothing here. An edge's
``by_version`` entries (``VersionTraffic``) restate ``graphstore.VersionTrafficJSON``.
"""

from __future__ import annotations

from typing import Any

from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field, create_model

from proxies.telemetry.events import EDGE_EVENTS

# The JSON Schema of an object that lists every key it may have.
CLOSED = ConfigDict(json_schema_extra={"additionalProperties": False})


class Traffic(Schema):
    """What a node and an edge both carry: counts, rates and latency over the window."""

    requests: int = Field(description="requests in the window")
    errors: int = Field(description="of which errors (5xx or failed)")
    rps: float = Field(description="requests / window")
    error_rate: float = Field(description="errors / requests (0 when idle)")
    p50_ms: float | None = Field(description="median latency in ms, null when idle")
    p95_ms: float | None = Field(description="95th percentile latency in ms, null when idle")
    p99_ms: float | None = Field(description="99th percentile latency in ms, null when idle")


class NodeName(Schema):
    id: str
    service: str
    versions: list[str] = Field(description="versions that served requests in the window")


class EdgeEnds(Schema):
    source: str
    target: str


class _ClosedSchema(Schema):
    model_config = CLOSED


# What the sidecars' traffic policy did to calls on the edge in the window: one integer
# field per edge event, every key always present, 0 when nothing happened. Built from
# ``proxies.telemetry.events`` so the document lists exactly the keys the store writes,
# in its order, each with the event's description.
_EVENT_FIELDS: dict[str, Any] = {
    event.key: (int, Field(description=event.description)) for event in EDGE_EVENTS}
EdgeEvents = create_model(
    "EdgeEvents", __base__=_ClosedSchema, **_EVENT_FIELDS,
    __doc__="What the sidecars' traffic policy did to calls on the edge in the window.\n\n"
            "Every key is always present, 0 when nothing happened.")


class VersionTraffic(Schema):
    """One version of an edge's target: its part of the edge's calls (the observed split)."""

    model_config = CLOSED

    requests: int = Field(description="requests on the edge that this version answered")
    errors: int = Field(description="of which errors (5xx or failed)")
    rps: float = Field(description="requests / window")
    share: float = Field(ge=0, le=1, description="requests / the edge's requests (0 when the edge "
                                                 "is idle), rounded to 4 places")
    p50_ms: float | None = Field(description="median latency in ms, null when idle")
    p95_ms: float | None = Field(description="95th percentile latency in ms, null when idle")
    p99_ms: float | None = Field(description="99th percentile latency in ms, null when idle")


class InstanceTraffic(Traffic):
    """One instance of a service: the requests it served."""

    instance: str = Field(description="its service.instance.id: a sidecar's proxy id "
                                      "(GET /api/v1/instances/{proxy_id}/state)")


class CallerShare(Schema):
    """One calling service's part of an instance (the load balancers' actual split)."""

    model_config = CLOSED
    service: str = Field(description="a service whose sidecars call this one")
    share: float = Field(ge=0, le=1, description="of that service's requests to this service over "
                                                 "its sidecars' last heartbeat interval, the part "
                                                 "this instance got (0 when idle)")
    requests: int = Field(description="requests this instance got from it in that interval")


class LiveInstance(InstanceTraffic):
    """An instance at ``level=instance``: what it served in the window (the collector), and how
    its callers' sidecars balance to it now (their heartbeats, at most 3 intervals old;
    ``meshui.dashboard.instance_graph.LiveInstanceJSON``)."""

    callers: list[CallerShare] = Field(description="by service; empty when no sidecar reports "
                                                   "calling it")
    ewma_ms: float | None = Field(description="the callers' peak-EWMA RTT estimates, weighted by "
                                              "their requests (null: no caller reports it)")
    outstanding: int = Field(description="requests in flight to it, summed over its callers")
    ejected: bool = Field(description="a caller's outlier detection keeps it out now")
    ejected_until: float | None = Field(description="epoch seconds: when the last of those "
                                                    "ejections ends")
    overflow: int = Field(description="tries to it that failed fast on a full pool, summed over "
                                      "its callers")
    connected: bool = Field(description="its sidecar's control connection is open")
    last_seen: float | None = Field(description="epoch seconds: its sidecar's last heartbeat "
                                                "(null: not a registered sidecar)")


# pydantic puts the fields of the last base first: these orders are the store's.
class Node(Traffic, NodeName):
    """A service; its stats are the requests it served."""

    instances: list[LiveInstance] | None = Field(
        None, description="with level=instance only: the instances that served requests in "
                          "the window and the connected ones, by name, with their live state")


class Edge(Traffic, EdgeEnds):
    """Calls from ``source`` to ``target`` as the caller saw them."""

    server_requests: int = Field(description="the same calls as the target's side timed them "
                                             "(its sidecar, or SDK server spans paired)")
    server_p50_ms: float | None = Field(description="median latency at the target's side")
    server_p99_ms: float | None = Field(description="99th percentile at the target's side")
    network_p50_ms: float | None = Field(
        description="p50_ms - server_p50_ms, at least 0: the network and queueing between")
    network_p99_ms: float | None = Field(description="p99_ms - server_p99_ms, at least 0")
    events: EdgeEvents  # type: ignore[valid-type]  # a model built at import (above)
    by_version: dict[str, VersionTraffic] = Field(
        description="the observed traffic split: for each version of `target` that answered "
                    "calls on this edge, in version order, its part of them. Calls that carried "
                    "no version count in the edge's totals only, so the shares may add up to "
                    "less than 1.")


class Hidden(Schema):
    """What the graph does not show; zeros when it shows everything."""

    model_config = CLOSED

    nodes: int = Field(ge=0, description="services left out (beyond MESHUI_GRAPH_MAX_NODES, "
                                         "the least busy first)")
    edges: int = Field(ge=0, description="edges left out because an end was left out")


class Graph(Schema):
    """The live service graph over the last ``window`` seconds."""

    window: int
    generated_at: float = Field(description="epoch seconds")
    nodes: list[Node] = Field(description="services, by name")
    edges: list[Edge] = Field(description="edges, by source then target")
    hidden: Hidden


class HeatmapColumn(BaseModel):
    """One column: ``step`` seconds of one series (``collector.heatmap.ColumnJSON``)."""

    model_config = CLOSED
    start: int = Field(description="epoch seconds, a multiple of step")
    requests: int
    errors: int
    counts: list[int] = Field(description="requests per row of buckets_ms")
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class HeatmapExemplar(BaseModel):
    """A request in one cell, with the trace that shows it (an OTLP exemplar or a span)."""

    model_config = CLOSED
    column: int = Field(description="index into columns")
    bucket: int = Field(description="row: index into buckets_ms")
    trace_id: str = Field(description="32 lower-case hex digits; GET /api/v1/traces/{trace_id}")
    span_id: str = Field(description="16 lower-case hex digits")
    value_ms: float
    time: float = Field(description="epoch seconds, when the request ended")
    error: bool = Field(description="the request failed; an error's exemplar wins its cell")


class Heatmap(BaseModel):
    """A latency heatmap (``collector.heatmap.HeatmapJSON``); its counts over the window
    are the graph's requests of the same edge or service over the same window."""

    model_config = CLOSED
    window: int
    step: int
    buckets_ms: list[float] = Field(description="each row's lower bound (ms), low to high")
    top_ms: float | None = Field(description="where the last row ends (null: no traffic)")
    columns: list[HeatmapColumn] = Field(description="by start time")
    exemplars: list[HeatmapExemplar] = Field(
        description="at most one per cell: an error's if any, else the slowest")


class SeriesLine(BaseModel):
    """One metric's values, one per column (``collector.series.SeriesLineJSON``)."""

    model_config = CLOSED
    metric: str = Field(description="as asked in `metric` (docs/api.md lists them)")
    unit: str = Field(description="req/s, ratio (0..1), ms or events/s")
    values: list[float | None] = Field(
        description="one per entry of times; null where there is nothing to compute it from "
                    "(no requests in the column, or a metric this scope does not record)")


class Series(BaseModel):
    """Golden metrics over time of one edge, service, version or instance."""

    model_config = CLOSED
    window: int
    step: int
    times: list[int] = Field(description="each column's start, epoch seconds, a multiple of step")
    seconds: list[int] = Field(
        description="the seconds of the window each column covers: step, except maybe the "
                    "first and last; rates are per covered second (rate * seconds = count)")
    series: list[SeriesLine]


# Traces (collector.tracesearch / collector.tracedecode restate these as TypedDicts).
# Every name in them came from a span: data to escape, never markup.
class TraceEdge(BaseModel):
    model_config = CLOSED
    source: str = Field(description="the calling service (`unknown`: a caller outside the trace)")
    target: str


class TraceRoot(BaseModel):
    model_config = CLOSED
    service: str
    operation: str = Field(description="`<method> <http.route>`, else the span's name")


class TraceSummary(BaseModel):
    """One stored trace, as the search lists it (``collector.tracesearch.TraceSummaryJSON``)."""

    model_config = CLOSED
    trace_id: str = Field(description="32 lower-case hex digits")
    start: float = Field(description="epoch seconds: the trace's first span (or when it arrived, "
                                     "if its clock was implausible)")
    duration_ms: float = Field(description="the root span's duration, else the longest span's")
    max_span_ms: float = Field(description="the longest span")
    error: bool = Field(description="a span has status ERROR or an HTTP status >= 500")
    kept: bool = Field(description="in the kept tier (errors, calls slower than their edge's p99, "
                                   "meshui.keep): evicted after every common trace")
    span_count: int
    services: list[str] = Field(description="services with a span in the trace (at most 32)")
    edges: list[TraceEdge] = Field(description="calls client service -> server service (at most 64)")
    operations: list[str] = Field(description="operations of SERVER and root spans (at most 32)")
    root: TraceRoot | None = Field(description="the span without a parent; null when it was not "
                                               "stored (not sampled, or not arrived)")


class TraceList(BaseModel):
    """Traces a search found, newest first."""

    model_config = CLOSED
    traces: list[TraceSummary]
    examined: int = Field(description="stored traces the search read to find these")
    truncated: bool = Field(description="the search stopped at its cap of candidates before "
                                        "reading them all: narrow the time range or add filters")


class SpanEvent(BaseModel):
    model_config = CLOSED
    name: str
    time: float = Field(description="epoch seconds")
    offset_ms: float = Field(description="ms from the trace's first span")
    attributes: dict[str, Any]


class SpanLink(BaseModel):
    model_config = CLOSED
    trace_id: str
    span_id: str
    attributes: dict[str, Any]


class TraceSpan(BaseModel):
    """One span (``collector.tracedecode.SpanJSON``), in tree order."""

    model_config = CLOSED
    span_id: str = Field(description="16 lower-case hex digits")
    parent_span_id: str | None
    parent_missing: bool = Field(description="has a parent that is not in the stored trace")
    depth: int = Field(description="0 for a root; a child is one deeper than its parent")
    service: str
    version: str
    name: str
    kind: str = Field(description="server, client, internal, producer, consumer or unspecified")
    start: float = Field(description="epoch seconds")
    offset_ms: float = Field(description="ms from the trace's first span")
    duration_ms: float
    status: str = Field(description="unset, ok or error")
    status_message: str
    attributes: dict[str, Any] = Field(description="the span's attributes as JSON values (bytes "
                                                   "in base64, NaN and infinities as strings)")
    events: list[SpanEvent] = Field(description="the span's events (a sidecar's policy events)")
    links: list[SpanLink]


class Trace(TraceSummary):
    """A stored trace with all its spans, parents before their children."""

    spans: list[TraceSpan]
