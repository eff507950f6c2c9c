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
from collector.heatmap import (
    DEFAULT_STEP,
    MAX_STEP,
    HeatmapJSON,
    afetch_heatmap,
    edge_series,
    service_series,
    validate_step,
)
from collector.series import (
    DEFAULT_METRICS,
    METRICS,
    Scope,
    SeriesJSON,
    afetch_series,
    validate_metrics,
)
from collector.tracesearch import (
    TraceJSON,
    TraceListJSON,
    TraceQuery,
    afetch_trace,
    asearch_traces,
)
from meshui.redis_clients import get_async_redis, get_redis

__all__ = ["DEFAULT_METRICS", "METRICS", "Scope", "SeriesJSON", "aread_series", "validate_metrics",
           "DEFAULT_STEP", "DEFAULT_WINDOW", "MAX_STEP", "MAX_WINDOW", "WINDOW_CHOICES",
           "GraphJSON", "HeatmapJSON", "TraceJSON", "TraceListJSON", "TraceQuery",
           "aread_graph", "aread_heatmap", "aread_trace", "afind_traces", "edge_series",
           "page_window", "read_graph", "service_series", "validate_step", "validate_window",
           "window_label"]

# The windows a page offers to pick from (any other in 1..MAX_WINDOW works as ?window=N).
WINDOW_CHOICES = (10, 30, 60, 300, 900)


def window_label(window: int) -> str:
    """The window as a page writes it: "last 30 s", "last minute", "last 5 min"."""
    if window == 60:
        return "last minute"
    return f"last {window // 60} min" if window % 60 == 0 else f"last {window} s"


def page_window(raw: str | None) -> int:
    """A page's ``?window=`` (seconds, DEFAULT_WINDOW when absent); ValueError says why not."""
    if raw is None or raw == "":
        return DEFAULT_WINDOW
    try:
        window = int(raw)
    except ValueError:
        raise ValueError(f"window must be a whole number of seconds, got {raw!r}") from None
    return validate_window(window)


def read_graph(window: int, *, instances: bool = False) -> GraphJSON:
    """The graph of the last ``window`` seconds; raises one of ``DATA_SOURCE_ERRORS``."""
    return fetch_graph(get_redis(), window, max_nodes=settings.MESHUI_GRAPH_MAX_NODES,
                       instances=instances)


async def aread_graph(window: int, *, instances: bool = False) -> GraphJSON:
    """``read_graph`` for async callers (the API and the socket)."""
    return await afetch_graph(get_async_redis(), window, max_nodes=settings.MESHUI_GRAPH_MAX_NODES,
                              instances=instances)


async def aread_heatmap(series: str, window: int, step: int) -> HeatmapJSON:
    """One series' latency heatmap (``collector.heatmap``); raises ``DATA_SOURCE_ERRORS``."""
    return await afetch_heatmap(get_async_redis(), series, window, step)


async def aread_series(scope: Scope, window: int, step: int, metrics: tuple[str, ...]) -> SeriesJSON:
    """Golden metrics of one edge or service over time (``collector.series``)."""
    return await afetch_series(get_async_redis(), scope, window, step, metrics)


async def afind_traces(query: TraceQuery) -> TraceListJSON:
    """Stored traces ``query`` finds (``collector.tracesearch``); raises ``DATA_SOURCE_ERRORS``."""
    return await asearch_traces(get_async_redis(), query)


async def aread_trace(trace_id: str) -> TraceJSON | None:
    """One stored trace with all its spans, or None; raises ``DATA_SOURCE_ERRORS``."""
    return await afetch_trace(get_async_redis(), trace_id)
