"""The restart hold: after meshui starts, endpoints pushes wait until the registry settles.

Issue 6: after a meshui restart sidecars reconnect one by one, and the first ones were sent
endpoint sets holding only the instances reconnected so far (7 x 502). Every sidecar still
runs the full set it had, so this process sends no endpoints until the instances the
database knew as connected when it started have all said hello again, or one
heartbeat interval has passed (a sidecar that has not reconnected by then is treated as
gone, as the stale sweep would). The push that was held is then sent once, with the latest
snapshot; a ``welcome`` is never held.

``decide`` is the pure decision (values and a clock in); ``RestartHold`` is this process's
state around it. Several ASGI processes each hold their own pushes; the known and returned
sets come from the shared database, and a Redis key tells the Celery stale sweep to wait
too (meshui/registry/tasks.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from channels.db import database_sync_to_async
from django.conf import settings

from meshui.redis_clients import get_async_redis
from meshui.registry.models import Instance

logger = logging.getLogger(__name__)

HOLD_KEY = "meshui:endpoints:hold"  # set while some ASGI process holds its pushes
POLL_S = 0.25  # how often a hold re-reads the registry for hellos other processes took


@dataclass(frozen=True, slots=True)
class Settle:
    held: bool
    reason: str
    wait_s: float  # until the hold ends at the latest (0 when not held)


def decide(known: frozenset[str], returned: frozenset[str], started_at: float, now: float,
           interval: float) -> Settle:
    """Whether pushes are still held: until every known instance returned, or ``interval``."""
    missing = known - returned
    if not missing:
        return Settle(False, f"all {len(known)} known instance(s) said hello again", 0.0)
    deadline = started_at + interval
    if now >= deadline:
        return Settle(False, f"one heartbeat interval ({interval:g} s) passed; "
                             f"{len(missing)} known instance(s) did not return: "
                             f"{', '.join(sorted(missing)[:10])}", 0.0)
    return Settle(True, f"waiting for {len(missing)} of {len(known)} known instance(s)",
                  deadline - now)


def _known_and_returned(started_at: float, known: frozenset[str] | None
                        ) -> tuple[frozenset[str], frozenset[str]]:
    """The instances connected when the process started (read once), and those back since."""
    start = datetime.fromtimestamp(started_at, tz=UTC)
    if known is None:
        # Read at the first push of this process, before its own hellos: rows connected
        # since we started were live then too, and count as returned below.
        # Connected rows, however old their last heartbeat: the stale sweep leaves them
        # alone while the control plane is down (tasks.py), so a long outage still knows
        # whom to wait for.
        known = frozenset(Instance.objects.filter(connected=True).values_list(
            "proxy_id", flat=True))
    returned = frozenset(
        Instance.objects.filter(proxy_id__in=known, connected=True, connected_at__gte=start)
        .values_list("proxy_id", flat=True)
    )
    return known, returned


class RestartHold:
    """This process's hold. ``admits_push`` is asked before every endpoints publish."""

    def __init__(self, started_at: float, clock: Callable[[], float] = time.time) -> None:
        self.started_at = started_at
        self.clock = clock
        self.known: frozenset[str] | None = None
        self.settled = False
        self.pending = False  # a push was held and is owed when the hold ends
        self._waiter: asyncio.Task[None] | None = None
        self._flush: Callable[[], Awaitable[object]] | None = None

    async def _check(self) -> Settle:
        self.known, returned = await database_sync_to_async(_known_and_returned)(
            self.started_at, self.known)
        verdict = decide(self.known, returned, self.started_at, self.clock(),
                         float(settings.MESHUI_HEARTBEAT_INTERVAL))
        if not verdict.held and not self.settled:
            self.settled = True
            logger.info("endpoints hold ended: %s", verdict.reason)
        return verdict

    async def admits_push(self, flush: Callable[[], Awaitable[object]]) -> bool:
        """True when a push may go now; otherwise it is owed and ``flush`` sends it later."""
        if self.settled:
            self.pending = False
            return True
        verdict = await self._check()
        if not verdict.held:
            self.pending = False  # this push is the latest snapshot: it pays what was owed
            return True
        if not self.pending:
            logger.info("endpoints push held after start: %s", verdict.reason)
            # The stale sweep waits as well, or it would push a set without the instances
            # still reconnecting (it runs in Celery, outside this hold).
            await get_async_redis().set(HOLD_KEY, "1", px=max(1, int(verdict.wait_s * 1000)))
        self.pending = True
        self._flush = flush
        loop = asyncio.get_running_loop()
        if self._waiter is None or self._waiter.done() or self._waiter.get_loop() is not loop:
            self._waiter = loop.create_task(self._wait(), name="endpoints-restart-hold")
        return False

    async def _wait(self) -> None:
        """Re-read the registry until the hold ends, then send the owed push once."""
        while True:
            verdict = await self._check()
            if not verdict.held:
                break
            await asyncio.sleep(min(POLL_S, verdict.wait_s))
        if self.pending and self._flush is not None:
            self.pending = False
            try:
                await self._flush()
            except Exception:  # a task boundary: log it, the next change pushes again
                logger.exception("endpoints hold: the held push failed")


# Started when the registry app loads (the ASGI process's start); tests replace it with
# ``begin`` to stand for a restart.
_hold = RestartHold(time.time())


def current_hold() -> RestartHold:
    return _hold


def begin(started_at: float | None = None, clock: Callable[[], float] = time.time
          ) -> RestartHold:
    """Start a new hold, as a process start does."""
    global _hold
    _hold = RestartHold(clock() if started_at is None else started_at, clock)
    return _hold


def settled_hold() -> RestartHold:
    """A hold that has already ended (what a long-running process has)."""
    hold = begin()
    hold.settled = True
    return hold
