"""Service graph from the sidecars' request histograms and traffic-policy counters.

Mapping (docs/telemetry.md): an ``outbound`` point is the edge source -> destination; an
``inbound`` point is node stats of the destination (and its version), and also the edge
source -> destination when the caller did not come through a sidecar (``unknown ->
frontend``), since no outbound point will describe that call. Either edge is also counted
under the point's ``destination.version``, the edge's observed split between versions.

Delta points are added as they are. Cumulative points are differenced against the last
point of the same stream, as the collector-contrib cumulativetodelta processor does: a new
start time or a falling count is a reset (the new value is all new), and the first point
of a stream counts in full only if the stream started after this collector did.

Policy counters (``meshui.proxy.retries`` and the rest, delta sums) are added to their
edge's ``events`` as they are (``GraphSink.add_edge_counter``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from collector.errors import ConfigError
from collector.records import TEMPORALITY_CUMULATIVE, GraphSink, MetricBatch, SidecarPoint
from collector.stats import CollectorStats


@dataclass(frozen=True, slots=True)
class SidecarMetricsConfig:
    max_cumulative_streams: int = 50_000

    def validate(self) -> None:
        if self.max_cumulative_streams < 1:
            raise ConfigError(
                "sidecar_metrics.max_cumulative_streams", f"must be >= 1, got {self.max_cumulative_streams}"
            )


class _Last:
    __slots__ = ("start_ns", "time_ns", "count", "latency")

    def __init__(self, point: SidecarPoint) -> None:
        self.start_ns = point.start_ns
        self.time_ns = point.time_ns
        self.count = point.count
        self.latency = point.latency


class SidecarMetricsConnector:
    """Metrics in, graph increments out."""

    def __init__(
        self,
        sink: GraphSink,
        config: SidecarMetricsConfig | None = None,
        stats: CollectorStats | None = None,
        started_ns: int | None = None,
    ) -> None:
        self.config = config or SidecarMetricsConfig()
        self.config.validate()
        self.sink = sink
        self.stats = stats or CollectorStats()
        self.started_ns = time.time_ns() if started_ns is None else started_ns
        self._last: OrderedDict[tuple[object, ...], _Last] = OrderedDict()

    def consume(self, batch: MetricBatch) -> None:
        if batch.bad_exemplars:
            self.stats.dropped["bad_exemplar"] += batch.bad_exemplars
        for point in batch.points:
            if point.temporality == TEMPORALITY_CUMULATIVE:
                delta = self._delta(point)
                if delta is None:
                    continue
                count, latency = delta
            else:
                count, latency = point.count, point.latency
            if count <= 0 and not latency:
                continue
            errors = count if point.status >= 500 else 0
            # Outbound, ``destination.version`` is the version of the instance that answered
            # ("" when none did); inbound, the sidecar's own: either way the target's.
            version = point.destination_version
            source, target, exemplars = point.source, point.destination, point.exemplars
            if point.direction == "outbound":
                self.sink.add_edge(source, target, count, errors, latency, version, exemplars)
            else:
                self.sink.add_node(target, version, count, errors, latency, point.instance, exemplars)
                if point.source_sidecar:
                    # The caller's sidecar counts the edge; this is its server-side timing.
                    self.sink.add_edge_served(source, target, count, errors, latency)
                else:
                    self.sink.add_edge(source, target, count, errors, latency, version, exemplars)
        for counter in batch.counters:
            if counter.value > 0:
                self.sink.add_edge_counter(counter.source, counter.destination, counter.event,
                                           counter.value, counter.reporter, counter.instance)

    def _delta(self, point: SidecarPoint) -> tuple[int, dict[int, int]] | None:
        """What a cumulative point adds since the last one of its stream (None: nothing)."""
        last = self._last.get(point.stream)
        if last is None:
            self._remember(point)
            if point.start_ns and point.start_ns >= self.started_ns:
                return point.count, point.latency
            # Started before us: its total includes requests another run already counted.
            self.stats.dropped["cumulative_first_point"] += 1
            return None
        self._last.move_to_end(point.stream)
        if point.time_ns and point.time_ns <= last.time_ns and point.start_ns == last.start_ns:
            self.stats.dropped["cumulative_out_of_order"] += 1
            return None
        if point.start_ns != last.start_ns or point.count < last.count:
            self._remember(point)  # reset: everything since the new start is new
            return point.count, point.latency
        latency: dict[int, int] = {}
        for index, count in point.latency.items():
            diff = count - last.latency.get(index, 0)
            if diff < 0:  # a bucket went down: a reset we could not see from the count
                self._remember(point)
                return point.count, point.latency
            if diff:
                latency[index] = diff
        count = point.count - last.count
        self._remember(point)
        return count, latency

    def _remember(self, point: SidecarPoint) -> None:
        self._last[point.stream] = _Last(point)
        self._last.move_to_end(point.stream)
        while len(self._last) > self.config.max_cumulative_streams:
            self._last.popitem(last=False)
            self.stats.dropped["cumulative_stream_evicted"] += 1

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None
