"""The path every OTLP receiver shares: decode -> validate -> limit -> offer -> count.

The HTTP receiver (``receiver.py``) and the gRPC receiver (``receiver_grpc.py``) differ only
in how a request reaches them and how an outcome is spelled on their wire; what happens to
the bytes of an export is this one function, so the two cannot drift apart. Its outcomes:

- the encoded ``Export*ServiceResponse`` (full or partial success);
- ``InvalidRequest``: the export can never be accepted (HTTP 400, gRPC INVALID_ARGUMENT);
- ``Refused``: the collector cannot take it now (HTTP 503, gRPC UNAVAILABLE), retryable.

``body`` is the request as the client sent it (decompressed): the protobuf bytes a
forwarder can be handed, together with ``signal``, at the point this function is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from collector import otlp_metrics, otlp_traces
from collector.errors import Refusal
from collector.stats import CollectorStats


class Pipeline(Protocol):
    """What a receiver needs from the rest of the collector."""

    def refusal(self) -> Refusal | None: ...

    def health_problems(self) -> list[str]: ...

    def offer(self, batch: Any, items: int) -> bool: ...

    def forward(self, signal: str, payload: bytes, content_type: str, items: int) -> None:
        """Forward an accepted export as received (uncompressed), when forwarding is on."""
        ...

    def limit(self, batch: Any) -> None:
        """Reject, in place and through the batch's partial success, what passes a cardinality limit."""
        ...


class Refused(Exception):
    """The collector cannot take an export now (transient: the client retries it)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


@dataclass(frozen=True, slots=True)
class Signal:
    """One OTLP signal's codec: how its exports are decoded and its responses encoded."""

    name: str  # "traces" or "metrics": the label of the refused_items counters
    decode_protobuf: Callable[[bytes], Any]
    decode_json: Callable[[bytes], Any]
    encode_response: Callable[[Any, bool], bytes]


TRACES = Signal("traces", otlp_traces.decode_protobuf, otlp_traces.decode_json, otlp_traces.encode_response)
METRICS = Signal(
    "metrics", otlp_metrics.decode_protobuf, otlp_metrics.decode_json, otlp_metrics.encode_response
)


def ingest(pipeline: Pipeline, stats: CollectorStats, signal: Signal, body: bytes, json: bool) -> bytes:
    """Take one export request into the pipeline; its response in the request's encoding.

    Raises ``InvalidRequest`` for a body that cannot be decoded and ``Refused`` when the
    pipeline is overloaded or Redis is down; both leave the pipeline untouched.
    """
    batch = signal.decode_json(body) if json else signal.decode_protobuf(body)
    items = batch.span_count if signal is TRACES else batch.point_count

    # Refused only once decoded, as the OpenTelemetry Collector does, so that a request
    # that can never be accepted gets its 400 rather than 503s forever, and so that the
    # items inside a refused request are known and counted.
    refusal = pipeline.refusal()
    if refusal is None:
        pipeline.limit(batch)
    if refusal is None and batch.items and not pipeline.offer(batch, batch.items):
        refusal = Refusal("queue_full", "the collector's queue is full; retry later")
    if refusal is not None:
        stats.refused[refusal.reason] += 1
        stats.refused_items[signal.name, refusal.reason] += items
        raise Refused(refusal)

    # Counted only once accepted: a refused request comes back as a retry.
    rejected = batch.rejected.count
    if signal is TRACES:
        stats.received_spans += items
        stats.rejected_spans += rejected
    else:
        stats.received_points += items
        stats.rejected_points += rejected
    # After acceptance only: a refused export comes back as a retry, and is forwarded then,
    # so the backend gets each export once.
    pipeline.forward(signal.name, body, "application/json" if json else "application/x-protobuf", items)
    return signal.encode_response(batch, json)
