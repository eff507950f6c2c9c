"""The live graph as the web app reads it: the node cap applied, ``hidden`` always present.

One place for the API view, the graph page and the graph socket, so the three show the same
graph and fail the same way: a Redis error is ``DATA_SOURCE_ERRORS``, answered 503 with
``Retry-After: RETRY_AFTER`` (docs/api.md) or a ``status`` frame on the socket.
"""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings

from collector.graphstore import afetch_graph, fetch_graph
from meshui.redis import get_async_redis, get_redis

# Seconds a client should wait before asking again while Redis is unreachable: the page and
# the socket retry at this pace, so they recover within ~RETRY_AFTER of Redis returning.
RETRY_AFTER = 2
# redis-py raises ConnectionError/TimeoutError (both RedisError) for a server that is down,
# restarting (BusyLoadingError) or unreachable; OSError covers a failure below redis-py.
DATA_SOURCE_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)


def read_graph(window: int) -> dict[str, Any]:
    """The graph of the last ``window`` seconds; raises one of ``DATA_SOURCE_ERRORS``."""
    return fetch_graph(get_redis(), window, max_nodes=settings.MESHUI_GRAPH_MAX_NODES)


async def aread_graph(window: int) -> dict[str, Any]:
    """``read_graph`` for async callers (the socket)."""
    return await afetch_graph(get_async_redis(), window, max_nodes=settings.MESHUI_GRAPH_MAX_NODES)
