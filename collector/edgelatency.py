"""Which calls are the slow ones of their edge: a running quantile of each edge's durations.

Pure. The trace store keeps the slowest requests of each edge in preference to the common
case (issue 9), so every call a stored trace makes is compared with its edge's running p99:
a call at or above it is slow, and its trace goes to the kept tier.

Each edge keeps a histogram on the sidecar's buckets (``proxies.telemetry.histogram``, ~9%
wide), so the quantile is within a bucket of the true one and costs no sorting. Counts are
halved once an edge has seen ``decay_at`` calls, so the quantile follows the last few
thousand calls rather than the whole life of the collector. The threshold is read again
every ``refresh_every`` calls (reading it walks the buckets). An edge that has seen fewer
than ``min_calls`` calls has no threshold yet: none of its calls is slow (a quiet edge's
traces are rarely evicted anyway: the budget goes to busy ones). At most ``max_edges`` edges
are tracked; past that the edge tracked longest is forgotten (per collector, like pairing).
"""

from __future__ import annotations

from proxies.telemetry.histogram import bucket_index, quantile


class _Edge:
    __slots__ = ("counts", "calls", "threshold", "since_refresh")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.calls = 0
        self.threshold: float | None = None
        self.since_refresh = 0


class EdgeLatency:
    """Each edge's running ``q`` quantile; ``is_slow`` records a call and says if it was slow."""

    def __init__(self, q: float = 0.99, min_calls: int = 50, decay_at: int = 4000,
                 refresh_every: int = 32, max_edges: int = 10_000) -> None:
        if not 0 < q < 1:
            raise ValueError(f"q must be between 0 and 1, got {q}")
        self.q = q
        self.min_calls = min_calls
        self.decay_at = max(decay_at, 2 * min_calls)
        self.refresh_every = refresh_every
        self.max_edges = max_edges
        self._edges: dict[str, _Edge] = {}

    def __len__(self) -> int:
        return len(self._edges)

    def threshold(self, edge: str) -> float | None:
        """The edge's current threshold in ms (None until it has seen ``min_calls`` calls)."""
        state = self._edges.get(edge)
        return None if state is None else state.threshold

    def is_slow(self, edge: str, duration_ms: float) -> bool:
        """Record one call of ``edge``; True when it took at least the edge's quantile."""
        state = self._edges.get(edge)
        if state is None:
            if len(self._edges) >= self.max_edges:
                del self._edges[next(iter(self._edges))]
            state = self._edges[edge] = _Edge()
        threshold = state.threshold
        slow = threshold is not None and duration_ms >= threshold
        index = bucket_index(duration_ms)
        counts = state.counts
        counts[index] = counts.get(index, 0) + 1
        state.calls += 1
        state.since_refresh += 1
        if state.calls >= self.decay_at:
            halved = {i: n // 2 for i, n in counts.items() if n > 1}
            state.counts = halved
            state.calls = sum(halved.values())
        if state.calls >= self.min_calls and (
                threshold is None or state.since_refresh >= self.refresh_every):
            state.threshold = quantile(state.counts, self.q)
            state.since_refresh = 0
        return slow
