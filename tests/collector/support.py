"""Shared helpers for collector tests: run a real collector, talk HTTP to it."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from collector.receiver import ReceiverConfig
from collector.service import Collector, CollectorConfig


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
