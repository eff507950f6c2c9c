"""Waiting for something to become true, with a deadline: how tests synchronise.

No test sleeps a fixed time and hopes; it polls a condition and fails, naming what it
waited for and the last value seen, when the deadline passes. ``eventually`` is for async
tests (its check may return a coroutine, e.g. ``asyncio.to_thread(...)``), ``wait_until``
for sync ones, and ``settled`` reads a value only once it has stopped changing (a baseline
count while telemetry from earlier traffic may still be landing).

A timeout bounds a failure and does not slow a pass, so pick it generously: CI runs on
loaded 2-core machines.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


def _met(result: object, deadline: float, timeout: float, what: str) -> bool:
    """Whether ``result`` is truthy; raises, naming it, once the deadline passed without that.

    The check always runs at least once, even with a zero timeout, and its last run comes
    after the deadline, so a condition met just in time still passes.
    """
    if result:
        return True
    if time.monotonic() > deadline:
        raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {result!r})")
    return False


@overload
async def eventually(
    check: Callable[[], Awaitable[T]], timeout: float = ..., interval: float = ..., what: str = ...
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T], timeout: float = ..., interval: float = ..., what: str = ...
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    timeout: float = 5.0,
    interval: float = 0.01,
    what: str = "the condition",
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result: Any = check()
        if inspect.isawaitable(result):
            result = await result
        if _met(result, deadline, timeout, what):
            return result
        await asyncio.sleep(interval)


def wait_until(
    check: Callable[[], T], timeout: float = 5.0, interval: float = 0.01, what: str = "the condition"
) -> T:
    """Poll ``check`` until it returns something truthy; return that (``eventually`` for sync tests)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if _met(result, deadline, timeout, what):
            return result
        time.sleep(interval)


def settled(
    read: Callable[[], T],
    quiet: float = 3.0,
    timeout: float = 30.0,
    interval: float = 0.25,
    what: str = "the value",
) -> T:
    """``read()`` once it has returned the same value for ``quiet`` seconds; that value.

    A read of None means "no answer yet" (an API that is still coming back): it starts the
    quiet period again, so None is never the settled value.
    """
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = read()
        if now is None or now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return value
    raise AssertionError(f"{what} still changing after {timeout} s (last: {value!r})")


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
