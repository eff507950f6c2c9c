"""Waiting for something to become true, with a deadline: how tests synchronise.

No test sleeps a fixed time and hopes; it polls a condition and fails, naming the last
value seen, when the deadline passes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T] | T], timeout: float = 5.0, interval: float = 0.01
) -> T:
    """Poll ``check`` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result: Any = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


def wait_until(check: Callable[[], T], timeout: float = 5.0, interval: float = 0.01) -> T:
    """``eventually`` for synchronous callers (a thread whose event loop is not ours to run,
    e.g. under Playwright's sync API): poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        time.sleep(interval)


async def first_matching(
    receive: Callable[[float], Awaitable[T]], wanted: Callable[[T], Any], timeout: float = 5.0,
    min_wait: float = 0.01,
) -> T:
    """Receive items until ``wanted`` accepts one, and return it: a stream's ``eventually``.

    ``receive(seconds)`` waits at most ``seconds`` for the next item (a WebSocket frame) and
    raises on a timeout; every receive shares one deadline, so the whole wait is bounded.
    """
    deadline = time.monotonic() + timeout
    while True:
        item = await receive(max(min_wait, deadline - time.monotonic()))
        if wanted(item):
            return item
