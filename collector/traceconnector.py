"""Connector: spans in, whole traces out to the trace store, each in its tier.

Spans of one trace arrive from several services, in several exports. The connector holds
each trace's spans for ``wait_s`` from its first span (the tail-sampling processor's
``decision_wait``, in one process), then hands the trace over as one ``TraceChunk``
(``collector.tracesummary``) with its tier decided: **kept** when a span failed (status
ERROR or HTTP 5xx), when a span carries ``meshui.keep = true``, or when one of its calls
took at least its edge's running p99 (``collector.edgelatency``); **common** otherwise.
The store evicts the common tier first.

Memory is bounded by ``max_pending_spans``: past it the oldest traces are handed over early
(nothing is lost, a trace may then be stored in two parts that the store merges). A trace
holds at most ``max_spans_per_trace`` spans; more are dropped and counted
(counted under reason ``too_large``). Spans that arrive after their trace was handed over start a new
chunk, which the store merges into the stored trace.

Pure, apart from the sweeper task: time comes from an injected clock and ``sweep()`` hands
over what is due; the exporter behind ``ChunkSink`` does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from collector.edgelatency import EdgeLatency
from collector.errors import ConfigError
from collector.records import RAW_PROTOBUF, Span, TraceBatch
from collector.stats import CollectorStats
from collector.tracesummary import TraceChunk, record_prefix, summarize

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TraceStoreConfig:
    enabled: bool = True
    ttl_s: int = 3600  # how long a trace stays searchable (from its start)
    max_bytes: int = 256 * 1024 * 1024  # the store's budget in Redis, shared by all collectors
    wait_s: float = 2.0  # how long a trace's spans are gathered before it is stored
    max_pending_spans: int = 200_000  # spans held in memory while their trace gathers
    max_spans_per_trace: int = 10_000
    flush_interval_s: float = 0.2
    # Traces handed over but not yet written (Redis slow or down); past it the oldest are
    # dropped and counted (reason backlog_full). Never a 503: the graph is what must not lose.
    max_backlog_bytes: int = 64 * 1024 * 1024
    batch_traces: int = 200  # traces per write script call
    slow_quantile: float = 0.99
    slow_min_calls: int = 50

    def validate(self) -> None:
        if not 1 <= self.ttl_s <= 7 * 24 * 3600:
            raise ConfigError("trace_store.ttl_s", f"must be 1..604800, got {self.ttl_s}")
        if self.max_bytes < 1024 * 1024:
            raise ConfigError("trace_store.max_bytes", f"must be >= 1048576 (1 MiB), got {self.max_bytes}")
        if not 0 < self.wait_s <= 60:
            raise ConfigError("trace_store.wait_s", f"must be > 0 and <= 60, got {self.wait_s}")
        for key, value in (("max_pending_spans", self.max_pending_spans),
                           ("max_spans_per_trace", self.max_spans_per_trace),
                           ("max_backlog_bytes", self.max_backlog_bytes),
                           ("batch_traces", self.batch_traces),
                           ("slow_min_calls", self.slow_min_calls)):
            if value < 1:
                raise ConfigError(f"trace_store.{key}", f"must be >= 1, got {value}")
        if not self.flush_interval_s > 0:
            raise ConfigError("trace_store.flush_interval_s", f"must be > 0, got {self.flush_interval_s}")
        if not 0 < self.slow_quantile < 1:
            raise ConfigError("trace_store.slow_quantile", f"must be in (0, 1), got {self.slow_quantile}")


class ChunkSink(Protocol):
    """Where finished traces go (``trace_exporter.RedisTraceExporter`` is one)."""

    def add_chunk(self, chunk: TraceChunk) -> None: ...


class _Gathering:
    __slots__ = ("due", "spans")

    def __init__(self, due: float) -> None:
        self.due = due
        self.spans: list[tuple[bytes, str, Span]] = []


class TraceStoreConnector:
    """Traces in, ``TraceChunk``s out (``consume``, then ``sweep`` once their wait is over)."""

    def __init__(self, sink: ChunkSink, config: TraceStoreConfig | None = None,
                 stats: CollectorStats | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or TraceStoreConfig()
        self.config.validate()
        self.sink = sink
        self.stats = stats or CollectorStats()
        self.clock = clock
        self.latency = EdgeLatency(self.config.slow_quantile, self.config.slow_min_calls)
        # Insertion order is due order (a constant wait on a monotonic clock).
        self._gathering: dict[bytes, _Gathering] = {}
        self._spans = 0
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def pending_spans(self) -> int:
        return self._spans

    def consume(self, batch: TraceBatch) -> None:
        gathering = self._gathering
        due = self.clock() + self.config.wait_s
        most = self.config.max_spans_per_trace
        added = too_large = 0
        for group in batch.groups:
            spans = group.spans
            if not spans:
                continue
            encoding = spans[0].encoding or RAW_PROTOBUF
            prefix = record_prefix(encoding, group.service, group.version)
            service = group.service
            for span in spans:
                trace = gathering.get(span.trace_id)
                if trace is None:
                    trace = gathering[span.trace_id] = _Gathering(due)
                elif len(trace.spans) >= most:
                    too_large += 1
                    continue
                trace.spans.append((prefix, service, span))
                added += 1
        if too_large:
            self.stats.trace_spans_dropped["too_large"] += too_large
        self._spans += added
        while self._spans > self.config.max_pending_spans and gathering:
            self._hand_over(next(iter(gathering)))
        self.stats.trace_pending_spans = self._spans

    def sweep(self) -> int:
        """Hand over every trace whose wait is over; returns how many."""
        now, gathering, handed = self.clock(), self._gathering, 0
        while gathering:
            trace_id = next(iter(gathering))
            if gathering[trace_id].due > now:
                break
            self._hand_over(trace_id)
            handed += 1
        self.stats.trace_pending_spans = self._spans
        return handed

    def flush(self) -> None:
        """Hand over everything gathered (shutdown)."""
        while self._gathering:
            self._hand_over(next(iter(self._gathering)))
        self.stats.trace_pending_spans = 0

    def _hand_over(self, trace_id: bytes) -> None:
        trace = self._gathering.pop(trace_id)
        self._spans -= len(trace.spans)
        chunk = summarize(trace_id, trace.spans)
        chunk.kept = self._kept(chunk, trace.spans)
        self.sink.add_chunk(chunk)

    def _kept(self, chunk: TraceChunk, spans: list[tuple[bytes, str, Span]]) -> bool:
        # Every call is recorded, so each edge's quantile sees all of its traffic.
        slow = False
        is_slow = self.latency.is_slow
        for edge, duration_ms in chunk.calls:
            if is_slow(edge, duration_ms):
                slow = True
        return slow or chunk.error or any(span.keep for _, _, span in spans)

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="trace-store-sweeper")

    async def shutdown(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self.flush()

    async def _sweep_forever(self) -> None:
        interval = min(0.25, self.config.wait_s / 2)
        while True:
            await asyncio.sleep(interval)
            try:
                self.sweep()
            except Exception:  # loop boundary: never let the sweeper die
                log.exception("trace store sweep failed")
