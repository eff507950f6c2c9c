"""The decoded, validated shape of OTLP exports that the connectors consume.

Decoders (``otlp_traces``, ``otlp_metrics``) walk an export once and keep only what the
service graph needs, so connectors never touch protobuf or JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3
SPAN_KIND_PRODUCER = 4
SPAN_KIND_CONSUMER = 5
STATUS_CODE_ERROR = 2

TEMPORALITY_DELTA = 1
TEMPORALITY_CUMULATIVE = 2

UNKNOWN_SERVICE = "unknown_service"


# How a stored span's bytes are encoded (``Span.raw``): the decoder's own message, re-encoded
# once. Readers (``collector.tracedecode``) turn either into the API's JSON.
RAW_PROTOBUF = "P"  # an opentelemetry.proto.trace.v1.Span, SerializeToString()
RAW_JSON = "J"  # the OTLP/JSON span object, orjson.dumps()


class Span:
    """One span, reduced to what pairing and the trace store need. Hot: one per received span.

    Pairing reads the ids, kind, duration, status and peer. The trace store also keeps the
    span whole, as the bytes it arrived in (``raw``, re-encoded from the decoder's message:
    ~1.4 µs a span for protobuf, bench/RESULTS.md "Collector ingest"), and reads its start,
    operation, ``meshui.keep`` flag and ``destination.service`` for the trace's summary;
    everything else is decoded only when someone opens the trace.
    """

    __slots__ = (
        "trace_id",
        "span_id",
        "parent_span_id",
        "kind",
        "duration_ms",
        "failed",
        "http_status",
        "peer",
        "start_ns",
        "operation",
        "keep",
        "destination",
        "raw",
        "encoding",
        "end_ns",
    )

    def __init__(
        self,
        trace_id: bytes,
        span_id: bytes,
        parent_span_id: bytes,
        kind: int,
        duration_ms: float,
        failed: bool,
        http_status: int,
        peer: str,
        start_ns: int = 0,
        operation: str = "",
        keep: bool = False,
        destination: str = "",
        raw: bytes = b"",
        encoding: str = RAW_PROTOBUF,
        end_ns: int = 0,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.kind = kind
        self.duration_ms = duration_ms
        self.failed = failed  # status code ERROR
        self.http_status = http_status
        self.peer = peer  # peer.service, else server.address, else ""
        self.start_ns = start_ns
        self.operation = operation  # "<method> <http.route>", else the span's name
        self.keep = keep  # meshui.keep = true: store the trace in the kept tier
        self.destination = destination  # destination.service (a sidecar's CLIENT span)
        self.raw = raw  # the whole span, encoded as ``encoding`` says
        self.encoding = encoding
        self.end_ns = end_ns


@dataclass(frozen=True, slots=True)
class Exemplar:
    """A request counted in a latency bucket, with the trace that shows it (OTLP exemplar)."""

    trace_id: str  # 32 lower-case hex
    span_id: str  # 16 lower-case hex
    value_ms: float
    time: float  # epoch seconds, when the request ended
    error: bool = False


@dataclass(slots=True)
class SpanGroup:
    """The spans of one resource (one service instance)."""

    service: str
    version: str
    sidecar: bool
    spans: list[Span] = field(default_factory=list)
    instance: str = ""  # service.instance.id, if it can name a series


@dataclass(slots=True)
class Rejections:
    """Items an export held that we could not accept, with the first reason."""

    count: int = 0
    message: str = ""

    def add(self, message: str, count: int = 1) -> None:
        self.count += count
        if not self.message:
            self.message = message


@dataclass(slots=True)
class TraceBatch:
    groups: list[SpanGroup] = field(default_factory=list)
    span_count: int = 0
    rejected: Rejections = field(default_factory=Rejections)
    # Trace ids of the spans carrying meshui.keep = true, noted while decoding (so the keep
    # relay, collector.keeprelay, never walks the spans again); may repeat.
    keep_trace_ids: list[bytes] = field(default_factory=list)

    @property
    def items(self) -> int:
        return self.span_count - self.rejected.count


@dataclass(slots=True)
class SidecarPoint:
    """One data point of ``meshui.proxy.request.duration`` from a sidecar.

    ``latency`` is already remapped onto ``proxies.telemetry.histogram``'s buckets, so
    cumulative points can be differenced bucket by bucket.
    """

    stream: tuple[object, ...]  # identity of the time series, for cumulative state
    direction: str
    source: str
    destination: str
    destination_version: str
    status: int
    source_sidecar: bool
    temporality: int
    start_ns: int
    time_ns: int
    count: int
    latency: dict[int, int]
    instance: str = ""  # the reporting sidecar's service.instance.id (its proxy id)
    exemplars: list[tuple[int, Exemplar]] = field(default_factory=list)  # (bucket index, exemplar)


@dataclass(frozen=True, slots=True)
class SidecarCounter:
    """One data point of a sidecar's policy counters (``meshui.proxy.retries``, ...): how
    many times ``event`` happened on the edge source -> destination in one interval (delta)."""

    source: str
    destination: str
    event: str  # the edge's ``events`` key: "retries", "ejections", ...
    value: int
    reporter: str = ""  # the service of the sidecar that counted them
    instance: str = ""  # and its service.instance.id (proxy id)


@dataclass(slots=True)
class MetricBatch:
    points: list[SidecarPoint] = field(default_factory=list)
    point_count: int = 0
    rejected: Rejections = field(default_factory=Rejections)
    counters: list[SidecarCounter] = field(default_factory=list)
    bad_exemplars: int = 0  # exemplars left out (bad ids or values, past the per-point cap)

    @property
    def items(self) -> int:
        return len(self.points) + len(self.counters)


class GraphSink(Protocol):
    """Where connectors put graph increments (``graphwriter.GraphWriter`` is one).

    ``exemplars`` are (bucket index, ``seriesstore.Exemplar``) pairs of requests among the
    counted ones, kept per heatmap cell.
    """

    def add_edge(
        self,
        source: str,
        target: str,
        requests: int,
        errors: int,
        latency: Mapping[int, int],
        version: str = "",
        exemplars: Sequence[tuple[int, Exemplar]] = (),
    ) -> None:
        """Calls ``source`` -> ``target``; ``version``: the target's that answered ("" unknown)."""
        ...

    def add_edge_served(
        self, source: str, target: str, requests: int, errors: int, latency: Mapping[int, int]
    ) -> None:
        """The same calls as ``target``'s side timed them (server-side latency of the edge)."""
        ...

    def add_node(
        self,
        service: str,
        version: str,
        requests: int,
        errors: int,
        latency: Mapping[int, int],
        instance: str = "",
        exemplars: Sequence[tuple[int, Exemplar]] = (),
    ) -> None: ...

    def add_edge_counter(self, source: str, target: str, name: str, value: int,
                         reporter: str = "", instance: str = "") -> None: ...
