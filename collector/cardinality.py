"""Cardinality limits: how many services, edges and series one collector writes per window.

An export that names 10,000 services must not grow every graph page and every Redis hash
without bound. Each collector admits at most ``max_services`` distinct service names,
``max_edges`` distinct edges and ``max_series`` distinct graph fields (counter series of the
per-second hashes) in each tumbling window of ``window_s`` seconds of wall-clock time; what
was admitted keeps flowing for the rest of the window, anything new past a limit is refused
and counted. The limits are per collector, so N collectors sharing one Redis can write up to
N times as much; the graph read (``graphstore.build_graph(max_nodes=...)``) keeps the page
small however much is stored.

Two places ask: the receiver, for what a decoded export names (items refused there are
rejected through OTLP partial success, so the sender knows), and the graph writer, for what
only pairing reveals (a span pair's edge) and for series (dropped there after the 200, and
counted). Pure: a clock in, decisions out.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from collector.errors import ConfigError
from collector.graphstore import UNKNOWN
from collector.records import SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER, SPAN_KIND_SERVER, MetricBatch, TraceBatch

# The ``limit`` label of the counters, in the order they are checked.
LIMITS = ("services", "edges", "series")


@dataclass(frozen=True, slots=True)
class CardinalityConfig:
    max_services: int = 1_000
    max_edges: int = 5_000
    max_series: int = 250_000
    window_s: int = 60

    def validate(self) -> None:
        for key in ("max_services", "max_edges", "max_series", "window_s"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"cardinality.{key}", f"must be an integer >= 1, got {value!r}")


class CardinalityLimiter:
    """Admits what fits in the current window, all or nothing per update; counts what it refuses.

    ``rejected`` counts items refused at the receiver (reported to the sender), ``dropped``
    graph updates refused at the writer (after the sender got its 200), both by limit.
    """

    def __init__(
        self, config: CardinalityConfig | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or CardinalityConfig()
        self.config.validate()
        self.clock = clock
        self._window = -1
        self.services: set[str] = set()
        self.edges: set[tuple[str, str]] = set()
        self.series: set[str] = set()
        self.rejected: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    def _roll(self) -> None:
        window = int(self.clock() // self.config.window_s)
        if window != self._window:
            self._window = window
            self.services.clear()
            self.edges.clear()
            self.series.clear()

    def admit(
        self, services: Iterable[str], edge: tuple[str, str] | None = None, fields: Sequence[str] = ()
    ) -> str | None:
        """Admit an update naming ``services``, maybe an ``edge`` and ``fields``; None if it fits.

        Otherwise nothing of it is admitted and the name of the first limit it would pass
        (``services``, ``edges``, ``series``) is returned.
        """
        self._roll()
        config = self.config
        new_services = {name for name in services if name not in self.services}
        if new_services and len(self.services) + len(new_services) > config.max_services:
            return "services"
        new_edge = edge is not None and edge not in self.edges
        if new_edge and len(self.edges) >= config.max_edges:
            return "edges"
        new_fields = [name for name in fields if name not in self.series]
        if new_fields and len(self.series) + len(set(new_fields)) > config.max_series:
            return "series"
        self.services |= new_services
        if new_edge and edge is not None:
            self.edges.add(edge)
        self.series.update(new_fields)
        return None

    def admit_series(self, fields: Iterable[str]) -> str | None:
        """``admit`` for an update that names no service or edge of its own: only series."""
        self._roll()
        series = self.series
        new_fields = {name for name in fields if name not in series}
        if new_fields:
            if len(series) + len(new_fields) > self.config.max_series:
                return "series"
            series |= new_fields
        return None

    def in_window(self) -> dict[str, int]:
        """How many of each are admitted in the current window (a gauge)."""
        self._roll()
        return {"services": len(self.services), "edges": len(self.edges), "series": len(self.series)}

    def limits(self) -> dict[str, int]:
        config = self.config
        return {"services": config.max_services, "edges": config.max_edges, "series": config.max_series}

    def message(self, limit: str) -> str:
        value = self.limits()[limit]
        return (
            f"{limit} limit reached: this collector takes at most {value} distinct {limit} "
            f"per {self.config.window_s} s window"
        )

    # -- the receiver's side: filter a decoded export --------------------------------------
    def limit_traces(self, batch: TraceBatch) -> None:
        """Reject the spans whose service (or client peer) is over the limit, in place."""
        for group in batch.groups:
            if group.sidecar:
                continue  # the connector skips sidecar spans: they write nothing
            refused = self.admit((group.service,))
            if refused is not None:
                self._reject(batch, refused, len(group.spans))
                group.spans = []
                continue
            kept = []
            for span in group.spans:
                refused = None
                if span.kind == SPAN_KIND_SERVER and not span.parent_span_id:
                    # A root span is also the edge unknown -> service.
                    refused = self.admit((UNKNOWN,), (UNKNOWN, group.service))
                elif span.peer and span.kind in (SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER):
                    refused = self.admit((span.peer,))
                if refused is not None:
                    self._reject(batch, refused, 1)
                    continue
                kept.append(span)
            group.spans = kept
        batch.groups = [group for group in batch.groups if group.spans]

    def limit_metrics(self, batch: MetricBatch) -> None:
        """Reject the points whose services or edge are over the limit, in place."""
        points = []
        for point in batch.points:
            if point.direction == "outbound" or not point.source_sidecar:
                refused = self.admit((point.source, point.destination), (point.source, point.destination))
            else:
                refused = self.admit((point.destination,))
            if refused is None:
                points.append(point)
            else:
                self._reject(batch, refused, 1)
        counters = []
        for counter in batch.counters:
            edge = (counter.source, counter.destination)
            refused = self.admit(edge, edge)
            if refused is None:
                counters.append(counter)
            else:
                self._reject(batch, refused, 1)
        batch.points, batch.counters = points, counters

    def _reject(self, batch: TraceBatch | MetricBatch, limit: str, items: int) -> None:
        if items:
            self.rejected[limit] += items
            batch.rejected.add(self.message(limit), items)
