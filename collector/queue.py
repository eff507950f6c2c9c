"""Processor: a bounded queue between the receiver and the connectors.

The receiver decodes and validates inline (so it can answer 400 / partial success at
once), then offers the batch here. A full queue means the connectors are behind: the
receiver answers 503 and the sender retries later (the exporterhelper sending queue of the
OpenTelemetry Collector, in one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.errors import ConfigError
from collector.stats import CollectorStats

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueueConfig:
    max_items: int = 200_000  # spans + data points waiting

    def validate(self) -> None:
        if self.max_items < 1:
            raise ConfigError("queue.max_items", f"must be >= 1, got {self.max_items}")


class QueueProcessor:
    def __init__(self, consume: Callable[[Any], None], config: QueueConfig | None = None,
                 stats: CollectorStats | None = None) -> None:
        self.config = config or QueueConfig()
        self.config.validate()
        self.consume = consume
        self.stats = stats or CollectorStats()
        self._queue: asyncio.Queue[tuple[Any, int]] = asyncio.Queue()
        self._items = 0
        self._worker: asyncio.Task[None] | None = None

    def full(self) -> bool:
        return self._items >= self.config.max_items

    def offer(self, batch: Any, items: int) -> bool:
        """Queue ``batch`` (holding ``items`` items); False when the queue is full."""
        # An oversized batch is still taken into an empty queue, or it could never pass.
        if self._items and self._items + items > self.config.max_items:
            return False
        self._items += items
        self.stats.queued_items = self._items
        self._queue.put_nowait((batch, items))
        return True

    async def drain(self) -> None:
        """Wait until everything offered so far has been consumed."""
        await self._queue.join()

    async def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="queue-processor")

    async def shutdown(self) -> None:
        if self._worker is not None:
            await self.drain()
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def _work(self) -> None:
        queue = self._queue
        while True:
            batch, items = await queue.get()
            try:
                self.consume(batch)
            except Exception:  # loop boundary: one bad batch must not stop the pipeline
                log.exception("a connector failed on a batch of %d items", items)
                self.stats.dropped["connector_error"] += items
            finally:
                self._items -= items
                self.stats.queued_items = self._items
                queue.task_done()
