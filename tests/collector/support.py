"""Shared helpers for collector tests: run a real collector, talk HTTP to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from collector.receiver import ReceiverConfig
from collector.receiver_grpc import GrpcReceiverConfig
from collector.service import Collector, CollectorConfig
from tests.collector.tcp_cut import CuttableLink


@asynccontextmanager
async def running_collector(redis_url: str, **overrides: Any):  # type: ignore[no-untyped-def]
    """A collector on free loopback ports (``.port``, ``.grpc_port``), shut down afterwards."""
    receiver = overrides.pop("receiver", ReceiverConfig(port=0))
    grpc_receiver = overrides.pop("grpc_receiver", GrpcReceiverConfig(port=0))
    config = replace(
        CollectorConfig(redis_url=redis_url, receiver=receiver, grpc_receiver=grpc_receiver), **overrides
    )
    collector = Collector(config)
    await collector.start()
    try:
        yield collector
    finally:
        await collector.shutdown()


@asynccontextmanager
async def redis_through_a_link(redis_url: str) -> AsyncIterator[tuple[CuttableLink, str]]:
    """A link to the test Redis that can be cut, and the Redis URL that goes through it."""
    real = urlsplit(redis_url)
    link = CuttableLink(real.hostname or "127.0.0.1", real.port or 6379)
    await link.start()
    try:
        yield link, f"redis://127.0.0.1:{link.port}{real.path}"
    finally:
        await link.close()


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
