"""Redis clients of the web app, one per URL (and per event loop for asyncio clients).

Redis holds everything live (the graph, the endpoints version, the channel layer), so a
Redis error is the one transient failure every view and socket expects:
``DATA_SOURCE_ERRORS``, answered 503 with ``Retry-After: RETRY_AFTER`` by the API
(docs/api.md) or a ``status`` frame on the graph socket.
"""

from __future__ import annotations

import asyncio
import threading

import redis
import redis.asyncio as aredis
from django.conf import settings

# Seconds a client should wait before asking again while Redis is unreachable: the page and
# the socket retry at this pace, so they recover within ~RETRY_AFTER of Redis returning.
RETRY_AFTER = 2
# redis-py raises ConnectionError/TimeoutError (both RedisError) for a server that is down,
# restarting (BusyLoadingError) or unreachable; OSError covers a failure below redis-py.
DATA_SOURCE_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

# Without timeouts a Redis host that drops packets hangs a request (and a worker thread)
# forever; with them it fails within seconds and the caller answers 503 (docs/api.md).
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0

_lock = threading.Lock()
_sync_clients: dict[str, redis.Redis] = {}
_async_clients: dict[tuple[int, str], tuple[asyncio.AbstractEventLoop, aredis.Redis]] = {}


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
    loop: a server runs one loop; a sync caller of an async view (Django's test client, a
    WSGI server) runs one per request, so clients of closed loops are dropped here.
    The pool holds at most ``MESHUI_REDIS_MAX_CONNECTIONS`` connections (redis-py 8 caps
    it at 100 otherwise; shared/notes/pitfalls.md).
    """
    loop = asyncio.get_running_loop()
    key = (id(loop), settings.REDIS_URL)
    cached = _async_clients.get(key)
    if cached is not None and cached[0] is loop:
        return cached[1]
    for stale in [k for k, (owner, _) in _async_clients.items() if owner.is_closed()]:
        del _async_clients[stale]
    client = aredis.Redis.from_url(
        settings.REDIS_URL, max_connections=settings.MESHUI_REDIS_MAX_CONNECTIONS,
        socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=READ_TIMEOUT)
    _async_clients[key] = (loop, client)
    return client
