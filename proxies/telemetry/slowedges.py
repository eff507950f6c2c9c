"""When a request counts as slow for tail keep: its edge's running p99, never below a floor.

Pure, and off the request path. The sidecar already histograms every request per attribute
set for its metrics (``proxies.telemetry.aggregate``); when the export task closes an
interval it hands the interval here (``observe``), which adds each point's buckets to a
running histogram of its edge and reads the edge's quantile again. The request path then
does one dict lookup: ``thresholds(outbound)[name]``, in seconds, with ``floor_s`` for an
edge that has none.

An edge is what the span is about: outbound, the destination service; inbound, the caller
(``source``). Counts are halved once an edge has ``decay_at`` requests, so the quantile
follows the last few thousand; an edge with fewer than ``min_calls`` has no quantile yet and
uses the floor alone. The collector's trace store reads slowness the same way
(``collector.edgelatency``: same buckets, same quantile), per collector; this is per
sidecar, so a slow request is known where it happened, before any span is shipped.
"""

from __future__ import annotations

from collections.abc import Iterable

from proxies.telemetry.aggregate import Point
from proxies.telemetry.histogram import quantile

DEFAULT_FLOOR_MS = 100.0
DEFAULT_QUANTILE = 0.99
DEFAULT_MIN_CALLS = 50
DECAY_AT = 4000
MAX_EDGES = 2000


class SlowEdges:
    """Per-edge thresholds in seconds, rebuilt from each closed interval (``observe``)."""

    __slots__ = ("floor_s", "q", "min_calls", "decay_at", "max_edges", "_edges",
                 "outbound", "inbound")

    def __init__(self, floor_ms: float = DEFAULT_FLOOR_MS, q: float = DEFAULT_QUANTILE,
                 min_calls: int = DEFAULT_MIN_CALLS, decay_at: int = DECAY_AT,
                 max_edges: int = MAX_EDGES) -> None:
        if not floor_ms > 0:
            raise ValueError(f"floor_ms must be positive, got {floor_ms}")
        if not 0 < q < 1:
            raise ValueError(f"q must be between 0 and 1, got {q}")
        self.floor_s = floor_ms / 1000.0
        self.q = q
        self.min_calls = min_calls
        self.decay_at = max(decay_at, 2 * min_calls)
        self.max_edges = max_edges
        # (outbound, name) -> [bucket counts, calls]
        self._edges: dict[tuple[bool, str], tuple[dict[int, int], list[int]]] = {}
        # What the request path reads: name -> seconds, only edges above the floor.
        self.outbound: dict[str, float] = {}
        self.inbound: dict[str, float] = {}

    def observe(self, points: Iterable[Point]) -> None:
        """Add one closed interval's points; swap in new threshold tables."""
        edges = self._edges
        touched: set[tuple[bool, str]] = set()
        for point in points:
            direction, source, destination = point.attributes[:3]
            outbound = direction == "outbound"
            key = (outbound, destination if outbound else source)
            state = edges.get(key)
            if state is None:
                if len(edges) >= self.max_edges:
                    del edges[next(iter(edges))]
                state = edges[key] = ({}, [0])
            counts, calls = state
            for index, count in point.buckets.items():
                counts[index] = counts.get(index, 0) + count
            calls[0] += point.count - point.zero_count
            touched.add(key)
        for key in touched:
            counts, calls = edges[key]
            if calls[0] >= self.decay_at:
                halved = {i: n // 2 for i, n in counts.items() if n > 1}
                counts.clear()
                counts.update(halved)
                calls[0] = sum(halved.values())
        self._rebuild()

    def _rebuild(self) -> None:
        outbound: dict[str, float] = {}
        inbound: dict[str, float] = {}
        floor_s = self.floor_s
        for (is_outbound, name), (counts, calls) in self._edges.items():
            if calls[0] < self.min_calls:
                continue
            ms = quantile(counts, self.q)
            if ms is not None and ms / 1000.0 > floor_s:
                (outbound if is_outbound else inbound)[name] = ms / 1000.0
        # Swapped by reference: the request path reads whichever table is in place.
        self.outbound, self.inbound = outbound, inbound

    def threshold_s(self, outbound: bool, name: str) -> float:
        """The edge's threshold now, in seconds (the request path inlines this)."""
        return (self.outbound if outbound else self.inbound).get(name, self.floor_s)
