"""The sidecar's telemetry: cheap recording on the request path, OTLP export off it.

``Telemetry`` owns one ``RequestAggregator`` (metrics), a bounded span queue and one export
task on the running event loop. Every ``export_interval`` the task swaps the metrics
interval out, encodes it in small requests and POSTs them, then sends spans in batches of
at most 128. A collector that is down or throttling costs a bounded backlog and counted
drops, never a blocked or failed request (docs/telemetry.md).

Per-signal export state lives in ``export_state``, the admin port's text in ``prometheus``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable

from proxies.telemetry.aggregate import AttributeSet, Interval, Point, RequestAggregator
from proxies.telemetry.counters import EdgeCounters
from proxies.telemetry.encode import (
    MAX_POINTS_PER_REQUEST,
    MetricsEncoder,
    encode_spans,
    rejected_in_response,
    resource_proto,
)
from proxies.telemetry.export_retry import Backoff, Outcome, classify, parse_retry_after
from proxies.telemetry.export_state import Batch, SignalExport
from proxies.telemetry.http_client import HttpClient, HttpError
from proxies.telemetry.model import Resource, SpanData
from proxies.telemetry.prometheus import prometheus_text

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-protobuf"
# Units: metrics drops and exports count request measurements (record_request calls);
# spans count spans.
DROP_REASONS = {
    "metrics": ("invalid", "cardinality_limit", "rejected", "backlog_full", "shutdown"),
    "spans": ("queue_full", "rejected", "shutdown", "no_endpoint"),
    # Traffic-policy increments travel inside metrics batches; lost with one, counted here.
    "events": ("rejected", "backlog_full", "shutdown"),
}
MAX_REQUEST_SERIES = 10_000  # distinct label sets kept for meshui_proxy_requests_total
SPAN_FLUSH_DELAY_S = 0.05  # flush_spans_soon: how long a burst of kept spans is gathered
_CRASH_LOG_EVERY_S = 60.0


class Telemetry:
    """Metrics and spans of one sidecar, exported over OTLP/HTTP protobuf."""

    def __init__(
        self,
        resource: Resource,
        otlp_endpoint: str | None,
        trace_sample: float,
        export_interval: float = 1.0,
        *,
        max_metric_intervals: int = 30,
        span_queue_size: int = 2048,
        span_batch_size: int = 128,
        max_attribute_sets: int = 2000,
        request_timeout: float = 5.0,
        stop_timeout: float = 2.0,
        backoff: Callable[[], Backoff] = Backoff,
    ) -> None:
        if not 0.0 <= trace_sample <= 1.0:
            raise ValueError(f"trace_sample must be within 0..1, got {trace_sample!r}")
        if not export_interval > 0:
            raise ValueError(f"export_interval must be positive, got {export_interval!r}")
        self.resource = resource
        self.otlp_endpoint = otlp_endpoint.rstrip("/") if otlp_endpoint else None
        self.trace_sample = trace_sample
        self.export_interval = export_interval
        self.stop_timeout = stop_timeout
        self._client = HttpClient(self.otlp_endpoint, request_timeout) if self.otlp_endpoint else None
        self._aggregator = RequestAggregator(time.time_ns(), max_attribute_sets)
        # The request path calls the aggregator's bound method directly: one Python call
        # less, 630 -> 450 ns per request (bench/telemetry_overhead.py). Same signature.
        self.record_request = self._aggregator.record  # type: ignore[method-assign]
        self.record_exemplar = self._aggregator.exemplar  # type: ignore[method-assign]
        # Policy events per edge (ProxyMetrics adds to them); exported with each interval.
        self.edge_counters = EdgeCounters(max_attribute_sets)
        self._encoder = MetricsEncoder(resource_proto(resource))
        self._resource_proto = resource_proto(resource)
        self._spans: deque[SpanData] = deque()
        self._span_queue_size = span_queue_size
        self._span_batch_size = span_batch_size
        self._metrics = SignalExport("metrics", "/v1/metrics", max_metric_intervals, backoff=backoff())
        self._traces = SignalExport("spans", "/v1/traces", 1, backoff=backoff())
        self._dropped = {(s, r): 0 for s, reasons in DROP_REASONS.items() for r in reasons}
        self._totals: dict[AttributeSet, list[float]] = {}
        self._totals_overflow = 0
        self._recorded = 0  # measurements of closed intervals, for requests_total
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._collector_state = "ok"
        self._last_crash_log = -math.inf
        self._loop: asyncio.AbstractEventLoop | None = None
        self._spans_due: float | None = None  # loop time when queued spans go out early
        # Called with each closed interval's points, on the export task (tail keep's
        # thresholds, proxies.telemetry.slowedges).
        self._interval_listeners: list[Callable[[list[Point]], None]] = []

    # -- request path -------------------------------------------------------------------

    def record_request(
        self,
        direction: str,
        source: str,
        destination: str,
        destination_version: str,
        status: int,
        source_sidecar: bool,
        duration_s: float,
    ) -> None:
        """Count one request in the current interval: no I/O, never raises (~0.5 µs).

        Replaced per instance by ``RequestAggregator.record`` (see ``__init__``); this body
        documents the interface and serves only subclasses.
        """
        self._aggregator.record(
            direction,
            source,
            destination,
            destination_version,
            status,
            source_sidecar,
            duration_s,
        )

    def record_exemplar(
        self,
        direction: str,
        source: str,
        destination: str,
        destination_version: str,
        status: int,
        source_sidecar: bool,
        duration_s: float,
        trace_id: bytes,
        span_id: bytes,
        end_ns: int,
    ) -> None:
        """Attach a sampled request, just recorded, to its latency bucket as an exemplar.

        Replaced per instance by ``RequestAggregator.exemplar`` (see ``__init__``).
        """
        self._aggregator.exemplar(direction, source, destination, destination_version, status,
                                  source_sidecar, duration_s, trace_id, span_id, end_ns)

    def record_span(self, span: SpanData) -> None:
        """Queue a sampled request's span; a full queue drops it and counts the drop."""
        try:
            spans = self._spans
            if self._client is None:
                self._dropped["spans", "no_endpoint"] += 1
            elif len(spans) >= self._span_queue_size:
                self._dropped["spans", "queue_full"] += 1
            else:
                spans.append(span)
                if len(spans) == self._span_batch_size and self._wake is not None:
                    self._wake.set()
        except Exception:  # noqa: BLE001 - never fail a request for telemetry
            self._dropped["spans", "queue_full"] += 1

    def flush_spans_soon(self) -> None:
        """Send the queued spans within ``SPAN_FLUSH_DELAY_S``, not at the next interval.

        Tail keep calls it for a kept trace: the other sidecars on its path still hold their
        spans of it for a few seconds only. The delay coalesces a burst into one export.
        """
        loop = self._loop
        if loop is None or self._spans_due is not None or self._wake is None:
            return
        self._spans_due = loop.time() + SPAN_FLUSH_DELAY_S
        self._wake.set()

    def watch_intervals(self, listener: Callable[[list[Point]], None]) -> None:
        """Call ``listener`` with the points of every interval closed from now on."""
        self._interval_listeners.append(listener)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the export task on the running loop."""
        if self._task is not None:
            return
        self._stopping = False
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="meshui-telemetry-export")

    async def stop(self) -> None:
        """Flush what is pending (within ``stop_timeout``), then stop; leftovers are counted."""
        task = self._task
        if task is None:
            return
        self._stopping = True
        assert self._wake is not None
        self._wake.set()
        _, pending = await asyncio.wait({task}, timeout=self.stop_timeout)
        if pending:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._task = None
        interval = self._aggregator.take(time.time_ns())
        unsent_events = sum(self.edge_counters.take().values())
        self._dropped["metrics", "shutdown"] += self._metrics.pending_items() + interval.measurements
        self._dropped["events", "shutdown"] += self._metrics.pending_events() + unsent_events
        self._fold_totals(interval)
        self._dropped["spans", "shutdown"] += self._traces.pending_items() + len(self._spans)
        self._metrics.backlog.clear()
        self._traces.backlog.clear()
        self._spans.clear()
        if self._client is not None:
            self._client.close()

    # -- export task --------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake
        assert wake is not None
        next_tick = loop.time() + self.export_interval
        while True:
            stopping = self._stopping
            try:
                now = loop.time()
                if now >= next_tick or stopping:
                    next_tick += self.export_interval
                    if next_tick <= now:  # the loop was stalled: do not catch up in a burst
                        next_tick = now + self.export_interval
                    await self._close_interval()
                    self._spans_due = None
                    self._stage_spans(force=True)
                elif self._spans_due is not None and now >= self._spans_due:
                    self._spans_due = None
                    self._stage_spans(force=True)
                else:
                    self._stage_spans(force=False)
                if self._client is not None:
                    await self._send(self._metrics, stopping)
                    await self._send(self._traces, stopping)
                    while stopping and self._stage_spans(force=True):
                        await self._send(self._traces, stopping)
            except Exception:  # noqa: BLE001 - the export loop must outlive any one failure
                if loop.time() - self._last_crash_log >= _CRASH_LOG_EVERY_S:
                    self._last_crash_log = loop.time()
                    log.exception("telemetry export failed; continuing")
                next_tick = loop.time() + self.export_interval
            if stopping:
                return
            wake.clear()
            deadline = next_tick
            for signal in (self._metrics, self._traces):
                if signal.backlog:
                    deadline = min(deadline, signal.retry_at)
            if self._spans_due is not None:
                deadline = min(deadline, self._spans_due)
            if (
                self._client is not None
                and not self._traces.backlog
                and len(self._spans) >= self._span_batch_size
            ):
                deadline = loop.time()
            timeout = deadline - loop.time()
            if timeout > 0 and not self._stopping:
                try:
                    async with asyncio.timeout(timeout):
                        await wake.wait()
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)

    async def _close_interval(self) -> None:
        """Swap the metrics interval out; queue it as requests of at most 100 data points.

        The interval's policy counters are taken in the same step and fill the requests
        after the request histograms, so they share the backlog, retries and drops.
        """
        interval = self._aggregator.take(time.time_ns())
        counts = list(self.edge_counters.take().items())
        self._fold_totals(interval)
        for listener in self._interval_listeners:
            try:
                listener(interval.unique)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the export
                log.exception("an interval listener failed")
        if self._client is None or not (interval.unique or counts):
            return
        points = interval.unique
        histograms = len(points)
        group: list[Batch] = []
        for start in range(0, histograms + len(counts), MAX_POINTS_PER_REQUEST):
            if start:
                await asyncio.sleep(0)  # let requests run between encodings
            end = start + MAX_POINTS_PER_REQUEST
            chunk = points[start:end]
            sums = counts[max(0, start - histograms) : max(0, end - histograms)]
            body = self._encoder.encode(chunk, interval.start_ns, interval.end_ns, sums)
            group.append(Batch(body, sum(point.count for point in chunk), sum(n for _, n in sums)))
        backlog = self._metrics.backlog
        backlog.append(group)
        while len(backlog) > self._metrics.max_groups:
            dropped = backlog.popleft()
            self._dropped["metrics", "backlog_full"] += sum(batch.items for batch in dropped)
            self._dropped["events", "backlog_full"] += sum(batch.events for batch in dropped)

    def _stage_spans(self, force: bool) -> bool:
        """Encode the next span batch when one is due and none is waiting; True if staged."""
        spans = self._spans
        if self._client is None or self._traces.backlog or not spans:
            return False
        if not force and len(spans) < self._span_batch_size:
            return False
        count = min(len(spans), self._span_batch_size)
        batch = [spans.popleft() for _ in range(count)]
        self._traces.backlog.append([Batch(encode_spans(self._resource_proto, batch), count)])
        return True

    async def _send(self, signal: SignalExport, stopping: bool) -> None:
        """Send the signal's backlog in order until it is empty or a retryable failure."""
        loop = asyncio.get_running_loop()
        while signal.backlog:
            if not stopping and loop.time() < signal.retry_at:
                return
            group = signal.backlog[0]
            outcome, retry_after = await self._post(signal, group[0])
            if outcome is Outcome.RETRY:
                signal.retry_at = loop.time() + signal.backoff.next_delay(retry_after)
                return
            signal.backoff.reset()
            group.pop(0)
            if not group:
                signal.backlog.popleft()

    async def _post(self, signal: SignalExport, batch: Batch) -> tuple[Outcome, float | None]:
        assert self._client is not None
        try:
            response = await self._client.post(signal.path, batch.body, CONTENT_TYPE)
        except HttpError as error:
            signal.errors += 1
            self._set_state(
                "unreachable",
                f"collector unreachable at {self.otlp_endpoint} ({error}), buffering",
            )
            return Outcome.RETRY, None
        outcome = classify(response.status)
        if outcome is Outcome.OK:
            rejected, message = self._partial_rejection(signal, response.body)
            signal.exported += max(0, batch.items - rejected)
            if rejected:
                self._dropped[signal.name, "rejected"] += rejected
                log.warning("collector rejected %d %s: %s", rejected, signal.name, message)
            self._set_state("ok", f"collector reachable again at {self.otlp_endpoint}")
            return outcome, None
        signal.errors += 1
        if outcome is Outcome.REJECTED:
            self._dropped[signal.name, "rejected"] += batch.items
            if batch.events:
                self._dropped["events", "rejected"] += batch.events
            self._set_state(
                "rejecting",
                f"collector at {self.otlp_endpoint} rejects {signal.name} with HTTP "
                f"{response.status}: {response.body[:200]!r}; dropping them",
            )
            return outcome, None
        retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
        self._set_state(
            "throttled",
            f"collector at {self.otlp_endpoint} answers HTTP {response.status}, buffering and retrying",
        )
        return outcome, retry_after

    @staticmethod
    def _partial_rejection(signal: SignalExport, body: bytes) -> tuple[int, str]:
        try:
            return rejected_in_response(signal.name, body)
        except Exception:  # noqa: BLE001 - a 2xx with an unreadable body is still success
            return 0, ""

    def _set_state(self, state: str, message: str) -> None:
        """Log one line per change of the collector's state, not one per export."""
        if state == self._collector_state:
            return
        self._collector_state = state
        (log.info if state == "ok" else log.warning)("%s", message)

    def _fold_totals(self, interval: Interval) -> None:
        totals = self._totals
        for point in interval.unique:
            self._recorded += point.count
            total = totals.get(point.attributes)
            if total is None:
                if len(totals) >= MAX_REQUEST_SERIES:
                    self._totals_overflow += point.count
                    continue
                total = totals[point.attributes] = [0, 0.0]
            total[0] += point.count
            total[1] += point.sum

    # -- admin port and heartbeat ----------------------------------------------------------

    @property
    def requests_total(self) -> int:
        """Requests recorded since start, exported or not, counted or dropped (O(series))."""
        aggregator = self._aggregator
        return (
            self._recorded
            + aggregator.interval.measurements
            + aggregator.dropped_invalid
            + aggregator.dropped_cardinality
        )

    @property
    def dropped_total(self) -> int:
        """Telemetry lost before the collector, all signals and reasons summed."""
        aggregator = self._aggregator
        return (
            sum(self._dropped.values())
            + aggregator.dropped_invalid
            + aggregator.dropped_cardinality
            + self.edge_counters.dropped_cardinality
        )

    def prometheus(self) -> str:
        """Prometheus text lines for the sidecar's admin port (telemetry health, requests)."""
        aggregator = self._aggregator
        dropped = dict(self._dropped)
        dropped["metrics", "invalid"] += aggregator.dropped_invalid
        dropped["metrics", "cardinality_limit"] += (
            aggregator.dropped_cardinality + self.edge_counters.dropped_cardinality
        )
        return prometheus_text(
            dropped,
            (self._metrics, self._traces),
            len(self._spans) + self._traces.pending_items(),
            self._totals,
            aggregator.interval.unique,
            self._totals_overflow,
        )
