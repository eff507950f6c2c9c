"""The collector's own counters, shown on GET /health (JSON) and GET /metrics (Prometheus)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from collector.cardinality import LIMITS, CardinalityLimiter

# Why the forwarder dropped spans or data points (docs/collector.md, "Forwarding").
# "error" is a bug in the forwarder (logged with its traceback).
FORWARD_DROP_REASONS = ("queue_full", "rejected", "retries_exhausted", "shutdown", "error")


@dataclass(slots=True)
class ForwardStats:
    """The forwarder's counters (collector/forwarder.py); items are spans or data points."""

    queue_max_bytes: int = 0
    queue_max_exports: int = 0
    forwarded: Counter[str] = field(default_factory=Counter)  # items delivered, by signal
    # POSTs by (signal, HTTP status or "error" for no response: refused, reset, timed out).
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)  # by signal
    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)  # items by (signal, reason)
    backend_rejected: Counter[str] = field(default_factory=Counter)  # partial success, by signal
    queue_bytes: int = 0
    queue_exports: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "forwarded_spans": self.forwarded["traces"],
            "forwarded_points": self.forwarded["metrics"],
            "requests": {
                signal: {code: n for (s, code), n in sorted(self.requests.items()) if s == signal}
                for signal in ("traces", "metrics")
            },
            "retries": {signal: self.retries[signal] for signal in ("traces", "metrics")},
            "dropped_spans": {r: self.dropped["traces", r] for r in FORWARD_DROP_REASONS},
            "dropped_points": {r: self.dropped["metrics", r] for r in FORWARD_DROP_REASONS},
            "backend_rejected_spans": self.backend_rejected["traces"],
            "backend_rejected_points": self.backend_rejected["metrics"],
            "queue_bytes": self.queue_bytes,
            "queue_exports": self.queue_exports,
            "queue_max_bytes": self.queue_max_bytes,
            "queue_max_exports": self.queue_max_exports,
        }


@dataclass(slots=True)
class CollectorStats:
    """Counters every component increments; read by the receiver's health and metrics pages."""

    received_spans: int = 0
    received_points: int = 0
    rejected_spans: int = 0
    rejected_points: int = 0
    # Export requests refused with 503 / UNAVAILABLE (the client retries them), by reason, and the spans
    # or data points inside them, by (signal, reason). Neither counts in received_*.
    refused: Counter[str] = field(default_factory=Counter)
    refused_items: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Items accepted but not turned into graph data, by reason.
    dropped: Counter[str] = field(default_factory=Counter)
    requests: Counter[int] = field(default_factory=Counter)  # by HTTP status
    grpc_requests: Counter[str] = field(default_factory=Counter)  # by gRPC status name
    pairs: int = 0
    root_spans: int = 0
    expired_unpaired: int = 0
    virtual_peer_edges: int = 0
    pending_pairs: int = 0
    queued_items: int = 0
    pending_fields: int = 0
    redis_write_errors: int = 0
    redis_fields_written: int = 0
    redis_available: bool = True
    publishes: int = 0
    publish_errors: int = 0
    # Increments cut so that no per-second field passes validation.FIELD_LIMIT.
    clipped_increments: int = 0
    # The collector's cardinality limiter, read for its counters (None: no limits).
    cardinality: CardinalityLimiter | None = None
    # The forwarder's counters (None: forwarding is off).
    forwarding: ForwardStats | None = None
    # The trace store (collector.traceconnector, collector.trace_exporter).
    traces_stored: int = 0
    trace_spans_stored: int = 0
    traces_kept: int = 0  # of the stored, those in the kept tier (errors, slow, meshui.keep)
    traces_expired: int = 0
    trace_spans_expired: int = 0
    # Traces and their spans lost, by reason: evicted (past the budget), backlog_full,
    # too_large, shutdown.
    traces_dropped: Counter[str] = field(default_factory=Counter)
    trace_spans_dropped: Counter[str] = field(default_factory=Counter)
    trace_pending_spans: int = 0
    trace_backlog_spans: int = 0
    trace_store_bytes: int = 0  # as accounted in Redis after this collector's last write
    trace_store_budget: int = 0
    trace_write_errors: int = 0
    # The keep relay (collector.keeprelay): traces named to meshui for the sidecars' spans.
    keep_relayed_traces: int = 0
    keep_relay_messages: int = 0
    keep_relay_dropped: int = 0  # trace ids not relayed: too many waiting, or the layer failed
    keep_relay_errors: int = 0

    def _cardinality(self) -> dict[str, Any]:
        limiter = self.cardinality
        if limiter is None:
            return {}
        return {
            "window_s": limiter.config.window_s,
            "in_window": limiter.in_window(),
            "limits": limiter.limits(),
            "rejected": {limit: limiter.rejected.get(limit, 0) for limit in LIMITS},
            "dropped": {limit: limiter.dropped.get(limit, 0) for limit in LIMITS},
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "received_spans": self.received_spans,
            "received_points": self.received_points,
            "rejected_spans": self.rejected_spans,
            "rejected_points": self.rejected_points,
            "refused": dict(self.refused),
            "refused_spans": {r: n for (s, r), n in sorted(self.refused_items.items()) if s == "traces"},
            "refused_points": {r: n for (s, r), n in sorted(self.refused_items.items()) if s == "metrics"},
            "dropped": dict(self.dropped),
            "requests": {str(code): n for code, n in sorted(self.requests.items())},
            "grpc_requests": dict(sorted(self.grpc_requests.items())),
            "pairing": {
                "pairs": self.pairs,
                "root_spans": self.root_spans,
                "expired_unpaired": self.expired_unpaired,
                "virtual_peer_edges": self.virtual_peer_edges,
                "pending": self.pending_pairs,
                "dropped_store_full": self.dropped.get("pairing_store_full", 0),
                "dropped_shutdown": self.dropped.get("pairing_shutdown", 0),
            },
            "queued_items": self.queued_items,
            "pending_fields": self.pending_fields,
            "redis_available": self.redis_available,
            "redis_write_errors": self.redis_write_errors,
            "redis_fields_written": self.redis_fields_written,
            "publishes": self.publishes,
            "publish_errors": self.publish_errors,
            "clipped_increments": self.clipped_increments,
            "cardinality": self._cardinality(),
            "forwarding": self.forwarding.as_dict() if self.forwarding is not None else {},
            "traces": {
                "stored": self.traces_stored,
                "stored_spans": self.trace_spans_stored,
                "kept": self.traces_kept,
                "expired": self.traces_expired,
                "expired_spans": self.trace_spans_expired,
                "dropped": dict(self.traces_dropped),
                "dropped_spans": dict(self.trace_spans_dropped),
                "pending_spans": self.trace_pending_spans,
                "backlog_spans": self.trace_backlog_spans,
                "bytes": self.trace_store_bytes,
                "budget_bytes": self.trace_store_budget,
                "write_errors": self.trace_write_errors,
            },
            "keep_relay": {
                "relayed_traces": self.keep_relayed_traces,
                "messages": self.keep_relay_messages,
                "dropped_traces": self.keep_relay_dropped,
                "errors": self.keep_relay_errors,
            },
        }

    def prometheus(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        p = "meshui_collector_"
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {p}{name} {help_}")
            lines.append(f"# TYPE {p}{name} {kind}")
            for labels, value in samples:
                lines.append(
                    f"{p}{name}{labels} {value:g}"
                    if isinstance(value, float)
                    else f"{p}{name}{labels} {value}"
                )

        metric(
            "received_total",
            "counter",
            "Spans and data points in accepted exports (rejected ones included), by signal.",
            [('{signal="traces"}', self.received_spans), ('{signal="metrics"}', self.received_points)],
        )
        metric(
            "rejected_total",
            "counter",
            "Items rejected as invalid (partial success).",
            [('{signal="traces"}', self.rejected_spans), ('{signal="metrics"}', self.rejected_points)],
        )
        metric(
            "refused_total",
            "counter",
            "Export requests refused with 503 (the sender retries them), by reason.",
            [(f'{{reason="{r}"}}', n) for r, n in sorted(self.refused.items())],
        )
        metric(
            "refused_items_total",
            "counter",
            "Spans and data points in export requests refused with 503, by signal and reason.",
            [(f'{{signal="{s}",reason="{r}"}}', n) for (s, r), n in sorted(self.refused_items.items())],
        )
        metric(
            "dropped_total",
            "counter",
            "Items accepted but not counted, by reason.",
            [(f'{{reason="{r}"}}', n) for r, n in sorted(self.dropped.items())],
        )
        metric(
            "http_requests_total",
            "counter",
            "OTLP/HTTP requests, by status code.",
            [(f'{{code="{c}"}}', n) for c, n in sorted(self.requests.items())],
        )
        metric(
            "grpc_requests_total",
            "counter",
            "OTLP/gRPC Export calls, by gRPC status code name.",
            [(f'{{code="{c}"}}', n) for c, n in sorted(self.grpc_requests.items())],
        )
        metric("pairs_total", "counter", "Client/server span pairs matched.", [("", self.pairs)])
        metric(
            "root_server_spans_total", "counter", "Server spans without a parent.", [("", self.root_spans)]
        )
        metric(
            "expired_unpaired_total",
            "counter",
            "Spans whose partner never arrived.",
            [("", self.expired_unpaired)],
        )
        metric(
            "virtual_peer_edges_total",
            "counter",
            "Unpaired client spans counted as an edge to their peer (peer.service, else server.address).",
            [("", self.virtual_peer_edges)],
        )
        metric("pending_pairs", "gauge", "Spans waiting for their partner.", [("", self.pending_pairs)])
        metric("queued_items", "gauge", "Items in the pipeline queue.", [("", self.queued_items)])
        metric(
            "pending_fields", "gauge", "Graph counters not yet written to Redis.", [("", self.pending_fields)]
        )
        metric(
            "redis_up", "gauge", "1 when the last Redis write succeeded.", [("", int(self.redis_available))]
        )
        metric(
            "redis_write_errors_total",
            "counter",
            "Failed graph flushes to Redis.",
            [("", self.redis_write_errors)],
        )
        metric(
            "redis_fields_written_total",
            "counter",
            "Graph counters written to Redis.",
            [("", self.redis_fields_written)],
        )
        metric(
            "graph_publishes_total",
            "counter",
            "Live graph updates sent to the channel layer.",
            [("", self.publishes)],
        )
        metric(
            "graph_publish_errors_total", "counter", "Failed live graph updates.", [("", self.publish_errors)]
        )
        metric(
            "clipped_increments_total",
            "counter",
            "Graph increments cut so that no per-second counter passes its limit.",
            [("", self.clipped_increments)],
        )
        metric(
            "traces_stored_total",
            "counter",
            "Traces (or later parts of traces) written to the trace store, by tier.",
            [('{tier="kept"}', self.traces_kept), ('{tier="common"}', self.traces_stored - self.traces_kept)],
        )
        metric("trace_spans_stored_total", "counter", "Spans written to the trace store.",
               [("", self.trace_spans_stored)])
        metric("traces_expired_total", "counter",
               "Traces removed from the trace store at the end of their TTL.", [("", self.traces_expired)])
        metric("trace_spans_expired_total", "counter",
               "Spans removed with their traces at the end of the TTL.", [("", self.trace_spans_expired)])
        metric(
            "traces_dropped_total",
            "counter",
            "Traces lost by the trace store, by reason (evicted, backlog_full, too_large, shutdown).",
            [(f'{{reason="{r}"}}', n) for r, n in sorted(self.traces_dropped.items())],
        )
        metric(
            "trace_spans_dropped_total",
            "counter",
            "Spans lost by the trace store, by reason.",
            [(f'{{reason="{r}"}}', n) for r, n in sorted(self.trace_spans_dropped.items())],
        )
        metric("trace_pending_spans", "gauge", "Spans held while their trace gathers.",
               [("", self.trace_pending_spans)])
        metric("trace_backlog_spans", "gauge", "Spans of finished traces not yet written to Redis.",
               [("", self.trace_backlog_spans)])
        metric("trace_store_bytes", "gauge", "Bytes the trace store holds in Redis, as accounted.",
               [("", self.trace_store_bytes)])
        metric("trace_store_budget_bytes", "gauge", "The trace store's budget in Redis.",
               [("", self.trace_store_budget)])
        metric("trace_write_errors_total", "counter", "Failed trace store writes to Redis.",
               [("", self.trace_write_errors)])
        metric("keep_relayed_traces_total", "counter",
               "Traces marked meshui.keep named to meshui, which asks every sidecar for its spans.",
               [("", self.keep_relayed_traces)])
        metric("keep_relay_messages_total", "counter", "Keep relay messages sent to the channel layer.",
               [("", self.keep_relay_messages)])
        metric("keep_relay_dropped_total", "counter",
               "Trace ids not relayed (too many waiting, or the channel layer failed).",
               [("", self.keep_relay_dropped)])
        metric("keep_relay_errors_total", "counter", "Failed keep relay messages.",
               [("", self.keep_relay_errors)])
        cardinality = self._cardinality()
        if cardinality:
            metric(
                "cardinality",
                "gauge",
                "Distinct services, edges and series written in the current window.",
                [(f'{{kind="{k}"}}', n) for k, n in cardinality["in_window"].items()],
            )
            metric(
                "cardinality_limit",
                "gauge",
                "Most distinct services, edges and series written per window.",
                [(f'{{kind="{k}"}}', n) for k, n in cardinality["limits"].items()],
            )
            metric(
                "cardinality_rejected_total",
                "counter",
                "Spans and data points rejected (partial success) for passing a cardinality limit.",
                [(f'{{limit="{k}"}}', n) for k, n in cardinality["rejected"].items()],
            )
            metric(
                "cardinality_dropped_total",
                "counter",
                "Graph updates dropped after acceptance for passing a cardinality limit.",
                [(f'{{limit="{k}"}}', n) for k, n in cardinality["dropped"].items()],
            )
        forwarding = self.forwarding
        if forwarding is not None:
            signals = ("traces", "metrics")
            metric(
                "forwarded_total",
                "counter",
                "Spans and data points the forward backend accepted (2xx; less its partial rejections).",
                [(f'{{signal="{s}"}}', forwarding.forwarded[s]) for s in signals],
            )
            metric(
                "forward_requests_total",
                "counter",
                'Requests to the forward backend, by signal and HTTP status ("error": no response).',
                [(f'{{signal="{s}",code="{c}"}}', n) for (s, c), n in sorted(forwarding.requests.items())],
            )
            metric(
                "forward_retries_total",
                "counter",
                "Forward requests retried after a retryable outcome (429, 502, 503, 504, no response).",
                [(f'{{signal="{s}"}}', forwarding.retries[s]) for s in signals],
            )
            metric(
                "forward_dropped_total",
                "counter",
                "Spans and data points not forwarded, by signal and reason.",
                [
                    (f'{{signal="{s}",reason="{r}"}}', forwarding.dropped[s, r])
                    for s in signals
                    for r in FORWARD_DROP_REASONS
                ],
            )
            metric(
                "forward_backend_rejected_total",
                "counter",
                "Spans and data points the forward backend rejected through partial success.",
                [(f'{{signal="{s}"}}', forwarding.backend_rejected[s]) for s in signals],
            )
            metric(
                "forward_queue_bytes",
                "gauge",
                "Payload bytes waiting to be forwarded or in flight.",
                [("", forwarding.queue_bytes)],
            )
            metric(
                "forward_queue_exports",
                "gauge",
                "Exports waiting to be forwarded or in flight.",
                [("", forwarding.queue_exports)],
            )
            metric(
                "forward_queue_max_bytes",
                "gauge",
                "The forward queue's limit in payload bytes.",
                [("", forwarding.queue_max_bytes)],
            )
            metric(
                "forward_queue_max_exports",
                "gauge",
                "The forward queue's limit in exports.",
                [("", forwarding.queue_max_exports)],
            )
        return "\n".join(lines) + "\n"
