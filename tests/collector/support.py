"""Shared helpers for collector tests: run a real collector, poll with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

from collector.receiver import ReceiverConfig
from collector.service import Collector, CollectorConfig

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T] | T], timeout: float = 5.0,
                     interval: float = 0.02) -> T:
    """Poll ``check`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


@asynccontextmanager
async def running_collector(redis_url: str, **overrides: Any):  # type: ignore[no-untyped-def]
    """A collector on a free loopback port (``collector.port``), shut down afterwards."""
    receiver = overrides.pop("receiver", ReceiverConfig(port=0))
    config = replace(CollectorConfig(redis_url=redis_url, receiver=receiver), **overrides)
    collector = Collector(config)
    await collector.start()
    try:
        yield collector
    finally:
        await collector.shutdown()


def http(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP/1.1 request (urllib), returning status, headers and body even on errors."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body if method != "GET" else None,
                                     method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def ahttp(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(http, method, url, body, headers)
