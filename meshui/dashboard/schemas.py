"""The live graph's JSON as API schemas: the shape of ``collector.graphstore.GraphJSON``.

The graph store types its output with ``typing.TypedDict``s, which pydantic cannot read on
Python 3.11, so the shapes are restated here as schemas, field for field and in the order
the store writes them (tests/meshui/test_api_schema.py fails when the two disagree). A new
graph metric is a field in the TypedDict and here, and a line in ``figure.py`` to show it.
"""

from __future__ import annotations

from ninja import Schema
from pydantic import ConfigDict, Field

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


class EdgeEvents(Schema):
    """What the sidecars' traffic policy did to calls on the edge in the window.

    Every key is always present, 0 when nothing happened (``collector.graphstore.EDGE_EVENTS``).
    """

    model_config = CLOSED

    retries: int = Field(description="retries sent")
    ejections: int = Field(description="target instances ejected by outlier detection")
    overflows: int = Field(description="requests or retries failed fast by a circuit-breaker limit")
    timeouts: int = Field(description="connect, request, per-try and idle timeouts")
    faults: int = Field(description="faults injected (delays and aborts)")
    rate_limited: int = Field(
        description="requests answered 429 by a rate limit (caller's or callee's sidecar)")
    retry_budget_exhausted: int = Field(
        description="retries refused because the retry budget was spent")


# pydantic puts the fields of the last base first: these orders are the store's.
class Node(Traffic, NodeName):
    """A service; its stats are the requests it served."""


class Edge(Traffic, EdgeEnds):
    """Calls from ``source`` to ``target`` as the caller saw them."""

    events: EdgeEvents


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
