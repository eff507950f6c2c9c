"""What traffic policy did, per edge, since the last metrics export (docs/telemetry.md).

``ProxyMetrics`` keeps the sidecar's lifetime totals for the admin port; it also adds every
policy event (a retry, an overflow, an ejection, ...) here, keyed by the edge it happened
on, so the collector can put it on that edge of the graph. Only policy events touch this:
a plain successful request never does. The export task takes the counts with one
reference swap when it closes a metrics interval, exactly as it takes the request
aggregate, so they travel in the same requests, backlog and retries (delta temporality:
each export carries the increase since the previous one). Which events there are, and the
metric each is exported as, is ``proxies.telemetry.events``.
"""

from __future__ import annotations

from proxies.telemetry.events import EdgeEvent

DEFAULT_MAX_SERIES = 2000

#: (metric name, source.service, destination.service, extra attributes as (key, value) pairs)
CounterKey = tuple[str, str, str, tuple[tuple[str, str], ...]]


class EdgeCounters:
    """Policy event counts per (metric, source, destination, attributes) in one interval."""

    __slots__ = ("counts", "max_series", "dropped_cardinality")

    def __init__(self, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self.counts: dict[CounterKey, int] = {}
        self.max_series = max_series
        # Increments that found no room (the inbound source comes from a request header, so
        # its values are not bounded); counted with the metrics drops.
        self.dropped_cardinality = 0

    def add(
        self, event: EdgeEvent, source: str, destination: str, attributes: tuple[tuple[str, str], ...] = ()
    ) -> None:
        """Count one ``event`` on the edge ``source -> destination``.

        An ``EdgeEvent``, not a metric name: only the events the collector knows can be counted.
        """
        key = (event.metric, source, destination, attributes)
        counts = self.counts
        n = counts.get(key)
        if n is None and len(counts) >= self.max_series:
            self.dropped_cardinality += 1
            return
        counts[key] = (n or 0) + 1

    def take(self) -> dict[CounterKey, int]:
        """Hand the counts since the last take over and start afresh (one swap)."""
        counts, self.counts = self.counts, {}
        return counts
