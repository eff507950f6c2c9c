"""Redis clients for the web app, one per URL (and per event loop for asyncio clients)."""

from __future__ import annotations

import asyncio
import threading

import redis
import redis.asyncio as aredis
from django.conf import settings

_lock = threading.Lock()
_sync_clients: dict[str, redis.Redis] = {}
_async_clients: dict[tuple[int, str], aredis.Redis] = {}

# Without timeouts a Redis host that drops packets hangs a request (and a worker thread)
# forever; with them it fails within seconds and the caller answers 503 (docs/api.md).
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0


def get_redis() -> redis.Redis:
    """A shared synchronous client for ``settings.REDIS_URL`` (thread-safe pool)."""
    url = settings.REDIS_URL
    with _lock:
        client = _sync_clients.get(url)
        if client is None:
            client = _sync_clients[url] = redis.Redis.from_url(
                url, health_check_interval=30, socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=READ_TIMEOUT)
        return client


def get_async_redis() -> aredis.Redis:
    """An asyncio client for ``settings.REDIS_URL`` bound to the running loop.

    asyncio connections belong to the loop that opened them, so clients are cached per
    loop; a server runs one loop, tests run one per test.
    """
    loop = asyncio.get_running_loop()
    key = (id(loop), settings.REDIS_URL)
    client = _async_clients.get(key)
    if client is None or getattr(client, "_meshui_loop", None) is not loop:
        client = aredis.Redis.from_url(
            settings.REDIS_URL, max_connections=200, socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=READ_TIMEOUT)
        client._meshui_loop = loop  # type: ignore[attr-defined]
        _async_clients[key] = client
    return client
