"""Exporter: write graph increments to Redis with ``graphwriter.GraphWriter``.

Connectors add increments in memory; a flush every ``flush_interval_s`` writes them with
HINCRBY (so any number of collectors add up exactly), as one batch that Redis applies at
most once. When Redis fails the batch is kept and sent again under the same id, and the
exporter reports itself unavailable so the receiver answers new exports with 503 (the
senders retry later) instead of letting the backlog grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from collector.cardinality import CardinalityLimiter
from collector.errors import ConfigError, Refusal
from collector.graphwriter import GraphWriter
from collector.redis_availability import RedisAvailability
from collector.stats import CollectorStats

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RedisExporterConfig:
    flush_interval_s: float = 0.1
    # Above this many pending counter fields new exports get 503 (Redis slow or down).
    max_pending_fields: int = 500_000
    socket_timeout_s: float = 2.0

    def validate(self) -> None:
        if not self.flush_interval_s > 0:
            raise ConfigError("redis_exporter.flush_interval_s", f"must be > 0, got {self.flush_interval_s}")
        if self.max_pending_fields < 1:
            raise ConfigError(
                "redis_exporter.max_pending_fields", f"must be >= 1, got {self.max_pending_fields}"
            )
        if not self.socket_timeout_s > 0:
            raise ConfigError("redis_exporter.socket_timeout_s", f"must be > 0, got {self.socket_timeout_s}")


def redis_client(url: str, socket_timeout_s: float = 2.0, max_connections: int = 50) -> aredis.Redis:
    """An asyncio client that fails fast and never re-sends a command by itself.

    redis-py 8 retries failed commands (and whole pipelines) with backoff by default. The
    flush loop already retries, with the same batch id, and the other callers (publisher
    lock, pings) run again on their next round; a second retry policy would only hold a
    round up while Redis is down.
    """
    return aredis.Redis.from_url(
        url,
        socket_connect_timeout=min(1.0, socket_timeout_s),
        socket_timeout=socket_timeout_s,
        retry=Retry(NoBackoff(), 0),
        max_connections=max_connections,
    )


class RedisGraphExporter:
    """A ``GraphSink`` that buffers increments and flushes them to Redis periodically."""

    def __init__(
        self,
        redis: Any,
        config: RedisExporterConfig | None = None,
        stats: CollectorStats | None = None,
        clock: Callable[[], float] = time.time,
        availability: RedisAvailability | None = None,
        limiter: CardinalityLimiter | None = None,
    ) -> None:
        self.config = config or RedisExporterConfig()
        self.config.validate()
        self.redis = redis
        self.stats = stats or CollectorStats()
        self.availability = availability or RedisAvailability(self.stats)
        self.writer = GraphWriter(clock=clock, limiter=limiter)
        self._bind_sink()
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    # GraphSink: the writer's, bound once (the connectors call them per span or point).
    def _bind_sink(self) -> None:
        writer = self.writer
        self.add_edge = writer.add_edge
        self.add_edge_served = writer.add_edge_served
        self.add_node = writer.add_node
        self.add_edge_counter = writer.add_edge_counter

    def refusal(self) -> Refusal | None:
        """Why new exports should be refused with 503 now, or None."""
        if not self.availability.available:
            return Refusal("redis_unavailable", "Redis is unreachable; retry later")
        if self.stats.pending_fields > self.config.max_pending_fields:
            return Refusal("write_backlog_full", "the collector's write backlog is full; retry later")
        return None

    def problems(self) -> list[str]:
        """What makes the exporter degraded, for ``/health`` (empty when healthy)."""
        problems = []
        if not self.availability.available:
            problems.append(f"redis unreachable: {self.availability.last_error}")
        if self.stats.pending_fields > self.config.max_pending_fields:
            problems.append(
                f"write backlog over its limit: {self.stats.pending_fields} graph "
                f"fields waiting, limit {self.config.max_pending_fields}"
            )
        return problems

    async def flush(self) -> int:
        """Write what is pending; on failure keep it for the next try. Returns fields written."""
        async with self._flush_lock:
            try:
                if self.writer.pending:
                    written = await self.writer.aflush(self.redis)
                    self.stats.redis_fields_written += written
                elif not self.availability.available:
                    await self.redis.ping()  # nothing to write: just find out if it is back
                    written = 0
                else:
                    return 0
            except (aredis.RedisError, OSError) as exc:
                self.stats.redis_write_errors += 1
                self.availability.failed(exc)
                return 0
            finally:
                self.stats.pending_fields = self.writer.pending_fields
                self.stats.clipped_increments = self.writer.clipped
            self.availability.succeeded()
            return written

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flush_forever(), name="redis-exporter-flush")

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self.writer.pending:
            log.error("shutting down with %d graph fields not written to Redis", self.writer.pending_fields)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            try:
                await self.flush()
            except Exception:  # loop boundary: never let the flusher die
                log.exception("graph flush failed")
