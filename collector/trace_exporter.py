"""Exporter: write finished traces to Redis (``collector.tracestore``), batched, at most once.

The connector hands over ``TraceChunk``s; every ``flush_interval_s`` the exporter seals them
into batches of at most ``batch_traces`` traces and sends them in one pipeline, one
``WRITE_SCRIPT`` call a batch. The graph exporter's discipline (collector.redis_exporter):

- A batch has an id of its own (``<instance>:<sequence>``) and a marker key, so a batch sent
  again after a lost reply is applied at most once (spans are never stored twice).
- A failed batch is kept and sent again, with the same id, on the next flush; chunks that
  arrive meanwhile go into new batches.
- The backlog (unwritten chunks) is bounded by ``max_backlog_bytes``: past it the oldest
  chunks are dropped and counted (``backlog_full``). Traces are sampled and best effort, so
  a trace backlog never makes the receiver answer 503; a Redis outage does, through the one
  ``RedisAvailability`` that every component updates.
- What the script evicts (past the budget) and expires (past the TTL) is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aredis

from collector.redis_availability import RedisAvailability
from collector.stats import CollectorStats
from collector.traceconnector import TraceStoreConfig
from collector.tracestore import FLUSH_MARKER_PREFIX, FLUSH_MARKER_TTL, WRITE_SCRIPT, write_args
from collector.tracesummary import TraceChunk

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TraceWrite:
    """Chunks sealed under one id: Redis applies them at most once, however often sent."""

    id: str
    chunks: list[TraceChunk]

    @property
    def marker_key(self) -> str:
        return f"{FLUSH_MARKER_PREFIX}{self.id}"

    @property
    def spans(self) -> int:
        return sum(chunk.span_count for chunk in self.chunks)

    @property
    def size(self) -> int:
        return sum(chunk.size for chunk in self.chunks)


class RedisTraceExporter:
    """A ``ChunkSink`` that buffers finished traces and writes them to Redis periodically."""

    def __init__(self, redis: Any, config: TraceStoreConfig | None = None,
                 stats: CollectorStats | None = None, clock: Callable[[], float] = time.time,
                 availability: RedisAvailability | None = None, instance_id: str | None = None) -> None:
        self.config = config or TraceStoreConfig()
        self.config.validate()
        self.redis = redis
        self.stats = stats or CollectorStats()
        self.stats.trace_store_budget = self.config.max_bytes
        self.availability = availability or RedisAvailability(self.stats)
        self.clock = clock
        self.instance_id = instance_id or uuid.uuid4().hex
        self._sequence = itertools.count(1)
        self._pending: deque[TraceChunk] = deque()
        self._unconfirmed: list[TraceWrite] = []
        self._backlog_bytes = 0
        self._backlog_spans = 0
        self._script: Any = None
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    # ChunkSink
    def add_chunk(self, chunk: TraceChunk) -> None:
        self._pending.append(chunk)
        self._backlog_bytes += chunk.size
        self._backlog_spans += chunk.span_count
        while self._backlog_bytes > self.config.max_backlog_bytes and self._pending:
            self._drop(self._pending.popleft(), "backlog_full")
        self.stats.trace_backlog_spans = self._backlog_spans

    def _drop(self, chunk: TraceChunk, reason: str) -> None:
        self._backlog_bytes -= chunk.size
        self._backlog_spans -= chunk.span_count
        self.stats.traces_dropped[reason] += 1
        self.stats.trace_spans_dropped[reason] += chunk.span_count

    @property
    def pending(self) -> bool:
        return bool(self._pending) or bool(self._unconfirmed)

    def _seal(self) -> None:
        size = self.config.batch_traces
        while self._pending:
            chunks = [self._pending.popleft() for _ in range(min(size, len(self._pending)))]
            self._unconfirmed.append(TraceWrite(f"{self.instance_id}:{next(self._sequence)}", chunks))

    async def flush(self) -> int:
        """Write every pending trace; on failure keep them for the next try. Returns spans written."""
        async with self._flush_lock:
            # A batch whose outcome is unknown goes again first, alone: new chunks wait in
            # the (bounded) pending queue, so the unconfirmed set never grows while Redis fails.
            if not self._unconfirmed:
                self._seal()
            if not self._unconfirmed:
                return 0
            writes = list(self._unconfirmed)
            now = self.clock()
            if self._script is None:
                self._script = self.redis.register_script(WRITE_SCRIPT)
            config = self.config
            ttl_us = config.ttl_s * 1_000_000
            now_us = int(now * 1_000_000)
            try:
                pipe = self.redis.pipeline(transaction=False)
                for write in writes:
                    # Sweep at least as many expired traces as the batch adds, so expiry keeps up.
                    sweep = max(256, 2 * len(write.chunks))
                    await self._script(
                        keys=[write.marker_key],
                        args=[FLUSH_MARKER_TTL, now_us, ttl_us, config.max_bytes,
                              config.max_spans_per_trace, sweep,
                              *write_args(write.chunks, now_us, ttl_us)],
                        client=pipe)
                results = await pipe.execute()
            except (aredis.RedisError, OSError) as exc:
                self.stats.trace_write_errors += 1
                self.availability.failed(exc)
                return 0
            self.availability.succeeded()
            self._unconfirmed = []
            written = 0
            for write, result in zip(writes, results, strict=True):
                self._backlog_bytes -= write.size
                self._backlog_spans -= write.spans
                written += write.spans
                self._count(write, result)
            self.stats.trace_backlog_spans = self._backlog_spans
            return written

    def _count(self, write: TraceWrite, result: list[Any]) -> None:
        (applied, stored_t, stored_s, kept_t, evicted_t, evicted_s, expired_t, expired_s, large_t,
         large_s, total) = (int(value) for value in result)
        if not applied:
            log.info("trace batch %s was applied before (its reply was lost); not applied again", write.id)
            return
        stats = self.stats
        stats.traces_stored += stored_t
        stats.trace_spans_stored += stored_s
        stats.traces_kept += kept_t
        stats.traces_expired += expired_t
        stats.trace_spans_expired += expired_s
        if evicted_t:
            stats.traces_dropped["evicted"] += evicted_t
            stats.trace_spans_dropped["evicted"] += evicted_s
        if large_t:
            stats.traces_dropped["too_large"] += large_t
            stats.trace_spans_dropped["too_large"] += large_s
        stats.trace_store_bytes = total

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flush_forever(), name="trace-exporter-flush")

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self.pending:
            chunks = [*self._pending, *(c for w in self._unconfirmed for c in w.chunks)]
            log.error("shutting down with %d traces (%d spans) not written to Redis",
                      len(chunks), sum(c.span_count for c in chunks))
            for chunk in chunks:
                self._drop(chunk, "shutdown")
            self._pending.clear()
            self._unconfirmed = []
            self.stats.trace_backlog_spans = self._backlog_spans

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            try:
                await self.flush()
            except Exception:  # loop boundary: never let the flusher die
                log.exception("trace flush failed")
