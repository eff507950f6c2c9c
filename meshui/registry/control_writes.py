"""What the control channel records, written in batches: one transaction per flush.

A revision pushed to N sidecars comes back as N ACKs within milliseconds, and N sidecars send
N heartbeats every interval. Written one by one through channels' single database thread,
each its own transaction on a fresh connection, 1000 ACKs took over 30 s on SQLite, and at
1000 sidecars the heartbeats alone kept that thread busy, so every ACK queued behind them
(bench/convergence.py). Here each process queues them, and one flusher writes everything
queued in one transaction, then whatever arrived during that write, and so on: the batch
grows with the load, and a lone write goes out at once. Heartbeats are coalesced: one
UPDATE for every connection heard from since the last flush.

Nothing here blocks the consumer that submitted: a heartbeat or an ACK is recorded a flush
later, and the flusher itself publishes endpoints when a heartbeat revived an instance.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from channels.db import database_sync_to_async
from django.db import transaction
from django.utils import timezone

from meshui.registry import claims
from meshui.registry.endpoints import apublish_endpoints

logger = logging.getLogger(__name__)


class ControlWriter:
    """One event loop's queue of writes and heartbeats, and its flusher."""

    def __init__(self) -> None:
        self.answers: list[claims.Answer] = []
        self.heartbeats: set[str] = set()  # channel names of the connections heard from
        self.flusher: asyncio.Task[None] | None = None

    def answer(self, answer: claims.Answer) -> None:
        """Queue an ACK or NACK; answers from one connection keep their order."""
        self.answers.append(answer)
        self._wake()

    def heartbeat(self, connection: str) -> None:
        """The connection is alive: its row's ``last_seen`` moves on at the next flush."""
        self.heartbeats.add(connection)
        self._wake()

    def forget(self, connection: str) -> None:
        """The connection closed: a heartbeat still queued must not revive its row after the
        release (one already in a flush runs first: the database thread keeps the order)."""
        self.heartbeats.discard(connection)

    def _wake(self) -> None:
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.get_running_loop().create_task(self._flush(),
                                                                  name="control-writes")

    async def _flush(self) -> None:
        while self.answers or self.heartbeats:
            batch, self.answers = self.answers, []
            beats, self.heartbeats = self.heartbeats, set()
            try:
                revived = await database_sync_to_async(_apply)(batch, beats)
            except Exception:  # a loop boundary: the next heartbeat or ACK corrects it
                logger.exception("could not record %d control-channel answers and %d "
                                 "heartbeats", len(batch), len(beats))
                continue
            if revived:  # the stale sweep had left them out of the endpoints
                await apublish_endpoints()


def _apply(answers: list[claims.Answer], beats: set[str]) -> int:
    with transaction.atomic():
        if answers:
            claims.record_answers(answers)
        return claims.touch(beats, timezone.now()) if beats else 0


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ControlWriter] = (
    weakref.WeakKeyDictionary())


def writer() -> ControlWriter:
    """This event loop's writer."""
    return _writers.setdefault(asyncio.get_running_loop(), ControlWriter())
