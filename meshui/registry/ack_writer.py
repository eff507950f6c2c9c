"""ACKs and NACKs written in batches: one transaction for all that arrived meanwhile.

A revision pushed to N sidecars comes back as N ACKs within milliseconds. Written one by one
through channels' single database thread, each its own transaction, 1000 of them took over
30 s on SQLite (bench/convergence.py). Here each process queues them and one flusher writes
everything queued in one transaction, then whatever arrived during that write, and so on:
the batch grows with the load, and a lone ACK is written at once.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from django.db import transaction

logger = logging.getLogger(__name__)

Write = tuple[Callable[..., Any], tuple[Any, ...]]


class AckWriter:
    """One event loop's queue of writes and its flusher."""

    def __init__(self) -> None:
        self.queue: list[Write] = []
        self.flusher: asyncio.Task[None] | None = None

    def submit(self, write: Callable[..., Any], *args: Any) -> None:
        """Queue ``write(*args)``; writes from one connection keep their order."""
        self.queue.append((write, args))
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.get_running_loop().create_task(self._flush(),
                                                                  name="ack-writer")

    async def _flush(self) -> None:
        while self.queue:
            batch, self.queue = self.queue, []
            try:
                await database_sync_to_async(_apply)(batch)
            except Exception:  # a loop boundary: the next ACK of each sidecar corrects it
                logger.exception("could not record %d control-channel answers", len(batch))


def _apply(batch: list[Write]) -> None:
    with transaction.atomic():
        for write, args in batch:
            write(*args)


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AckWriter] = (
    weakref.WeakKeyDictionary())


def writer() -> AckWriter:
    """This event loop's writer."""
    return _writers.setdefault(asyncio.get_running_loop(), AckWriter())
