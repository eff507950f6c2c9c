"""The live graph as the web app reads it: the node cap applied, ``hidden`` always present.

One place for the API endpoint, the graph page and the graph socket, so the three show the
same graph and fail the same way (a Redis error is one of ``DATA_SOURCE_ERRORS``,
meshui.redis_clients). It is also meshui's one door to the collector's graph store: what
the web app needs of ``collector.graphstore`` is imported here.
"""

from __future__ import annotations

from django.conf import settings

from collector.graphstore import (
    DEFAULT_WINDOW,
    MAX_WINDOW,
    GraphJSON,
    afetch_graph,
    fetch_graph,
    validate_window,
)
from meshui.redis_clients import get_async_redis, get_redis

__all__ = ["DEFAULT_WINDOW", "MAX_WINDOW", "GraphJSON", "aread_graph", "read_graph",
           "validate_window"]


def read_graph(window: int) -> GraphJSON:
    """The graph of the last ``window`` seconds; raises one of ``DATA_SOURCE_ERRORS``."""
    return fetch_graph(get_redis(), window, max_nodes=settings.MESHUI_GRAPH_MAX_NODES)


async def aread_graph(window: int) -> GraphJSON:
    """``read_graph`` for async callers (the API and the socket)."""
    return await afetch_graph(get_async_redis(), window, max_nodes=settings.MESHUI_GRAPH_MAX_NODES)
