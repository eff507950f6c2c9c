"""Merge bursts of live updates into at most one send per interval, keeping the newest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestThrottle(Generic[T]):
    """Sends the first item at once, then at most one per ``interval`` seconds.

    Items submitted while waiting replace each other: only the newest is sent when the
    interval has passed (live graph states supersede each other, so nothing is lost).
    """

    def __init__(self, send: Callable[[T], Awaitable[None]], interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._send = send
        self._interval = interval
        self._clock = clock
        self._last_sent = -float("inf")
        self._pending: T | None = None
        self._timer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        now = self._clock()
        if self._timer is None and now - self._last_sent >= self._interval:
            self._last_sent = now
            await self._send(item)
            return
        self._pending = item
        if self._timer is None:
            delay = self._last_sent + self._interval - now
            self._timer = asyncio.create_task(self._send_later(delay))

    async def _send_later(self, delay: float) -> None:
        await asyncio.sleep(max(0.0, delay))
        item, self._pending = self._pending, None
        self._timer = None
        self._last_sent = self._clock()
        if item is not None:
            await self._send(item)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = None
