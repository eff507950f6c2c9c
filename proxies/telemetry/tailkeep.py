"""Tail keep: whole traces of slow and failed requests, without shipping every span (issue 9).

Head sampling (``--trace-sample``) decides before a request runs; whether it will be slow or
fail is known only at its end, and by then the other sidecars on its path are done with it.
So every sidecar holds a record of each **unsampled** request it carried for a few seconds
(``proxies.telemetry.spanring``), and a trace is *kept* three ways:

1. **Here.** A request this sidecar carried failed (5xx or a sidecar error) or was slow
   (``proxies.telemetry.slowedges``: at least its edge's running p99, never under
   ``--tail-slow-ms``): its span is exported now, with ``meshui.keep = true``, and so is
   every record of the same trace still held. The trace goes into the **wanted** set (a
   TTL'd dict), so spans of it that end later here are exported too.
2. **Up the chain, in-band.** An inbound response to another sidecar carries
   ``x-meshui-keep: 1`` when the trace is wanted here, or this request is failed or slow
   so far; the caller's sidecar strips it (the app never sees it) and marks the trace
   before its own span ends. Only a response from a registered endpoint (another
   sidecar) is believed; from the local app it is dropped and ignored.
3. **Everywhere else, through the control plane.** The collector, seeing a span with
   ``meshui.keep``, names the trace to meshui, which sends every sidecar an
   ``export_traces`` frame (docs/control-channel.md); ``export_traces`` here exports what the
   ring still holds of those traces and marks them wanted.

Bounded against floods: marking a trace (which exports what is held of it) takes a token
from one bucket of ``keep_rate`` per second, whoever asks (this sidecar, a response header,
a frame); without one the trace is refused and counted. The wanted set holds at most
``max_wanted`` traces (oldest out first). Spans go to the telemetry's bounded span queue,
whose drops are counted there.

Sampled requests never come here: their spans are exported already, and every sidecar on
their path samples them too (the ``traceparent`` flag).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from proxies.http1 import host_name, split_target
from proxies.telemetry.aggregate import Point
from proxies.telemetry.model import SpanData
from proxies.telemetry.slowedges import DEFAULT_FLOOR_MS, SlowEdges
from proxies.telemetry.spanring import (
    DEFAULT_MAX_AGE_S,
    DEFAULT_MAX_PER_TRACE,
    DEFAULT_SIZE,
    Record,
    SpanRing,
)
from proxies.telemetry.tracecontext import TraceContext

log = logging.getLogger("proxies.tailkeep")

KEEP_ATTRIBUTE = "meshui.keep"  # the collector's kept tier reads it (docs/collector.md)
KEEP_REASON_ATTRIBUTE = "meshui.keep.reason"
# Why a trace was marked kept on a sidecar (meshui.keep.reason, the Prometheus labels).
FAILED, SLOW, HEADER, REMOTE = "failed", "slow", "header", "remote"
MARK_REASONS = (FAILED, SLOW, HEADER, REMOTE)
# A span of a trace marked before it ended here carries this reason.
WANTED = "wanted"
KEEP_HEADER = b"x-meshui-keep"
KEEP_FIELD = b"x-meshui-keep: 1\r\n"

DEFAULT_KEEP_RATE = 50.0
DEFAULT_WANTED_TTL_S = 30.0
DEFAULT_MAX_WANTED = 4096

_perf = time.perf_counter


@dataclass(frozen=True, slots=True)
class TailKeepConfig:
    """The ``--tail-*`` flags (docs/sidecar.md, "Tail keep"); ``ring_size`` 0 turns it off."""

    ring_size: int = DEFAULT_SIZE
    ring_age_s: float = DEFAULT_MAX_AGE_S
    slow_ms: float = DEFAULT_FLOOR_MS
    keep_rate: float = DEFAULT_KEEP_RATE
    header: bool = True
    wanted_ttl_s: float = DEFAULT_WANTED_TTL_S
    max_wanted: int = DEFAULT_MAX_WANTED
    max_per_trace: int = DEFAULT_MAX_PER_TRACE

    @property
    def enabled(self) -> bool:
        return self.ring_size > 0

    def validate(self) -> list[str]:
        """Problems, each naming its flag (empty: valid)."""
        problems = []
        if self.ring_size < 0:
            problems.append(f"--tail-ring must be 0 (off) or more records, got {self.ring_size}")
        if not 0 < self.ring_age_s <= 300:
            problems.append(f"--tail-ring-age must be more than 0 and at most 300 seconds, "
                            f"got {self.ring_age_s}")
        if not 0 < self.slow_ms <= 3_600_000:
            problems.append(f"--tail-slow-ms must be more than 0 and at most 3600000, got {self.slow_ms}")
        if not 0 < self.keep_rate <= 100_000:
            problems.append(f"--tail-keep-rate must be more than 0 and at most 100000 per second, "
                            f"got {self.keep_rate}")
        return problems


class Finished(Protocol):
    """A request as it ends (``proxies.dataplane.exchange.Exchange``): what a record takes."""

    trace: TraceContext
    outbound: bool
    method: bytes
    target: bytes
    host: bytes | None
    status: int
    source: str
    destination_service: str
    destination_version: str
    endpoint: Any  # proxies.mesh.endpoints.Endpoint | None
    t0: float
    events: list[tuple[int, str, dict[str, Any]]] | None


class SpanSink(Protocol):
    def record_span(self, span: Any) -> None: ...


class TailKeeper:
    """The ring, the wanted set and the rules that export from them (module docstring)."""

    __slots__ = (
        "config", "ring", "slow", "wanted", "header", "telemetry", "clock", "wall_ns",
        "_tokens", "_tokens_at", "marked", "refused", "spans_exported", "wanted_evicted",
        "frames",
    )  # fmt: skip

    def __init__(self, config: TailKeepConfig, telemetry: SpanSink,
                 clock: Callable[[], float] = _perf, wall_ns: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self.ring = SpanRing(max(1, config.ring_size), config.ring_age_s, config.max_per_trace)
        self.slow = SlowEdges(config.slow_ms)
        self.wanted: dict[bytes, float] = {}  # trace id -> until (clock), oldest first
        self.header = config.header
        self.telemetry = telemetry
        self.clock = clock  # the data path's: time.perf_counter seconds
        self.wall_ns = wall_ns
        self._tokens = config.keep_rate
        self._tokens_at = clock()
        self.marked = dict.fromkeys(MARK_REASONS, 0)  # traces marked kept here, by reason
        self.refused = dict.fromkeys(MARK_REASONS, 0)  # ... refused by the rate cap
        self.spans_exported = 0
        self.wanted_evicted = 0
        self.frames = {"accepted": 0, "rejected": 0}  # export_traces frames

    # the request path ---------------------------------------------------------------------

    def add(self, ex: Finished, end: float, failed: bool) -> bool:
        """An unsampled request ended at ``end``: export it if it must be, else hold it.

        Whether its span went out now (kept: it can be its latency bucket's exemplar)."""
        trace = ex.trace
        trace_id = trace.trace_id
        outbound = ex.outbound
        endpoint = ex.endpoint
        # Atomic values only (the address, not the Endpoint): see spanring's docstring on GC.
        # The host is kept only when no instance was dialled (it is then server.address): a
        # record keeps ~440 bytes alive, this one ~40 of them.
        if endpoint is None:
            address, host = None, ex.host
        else:
            address, host = endpoint.address, None
        record = (trace_id, trace.span_id, trace.parent_span_id, outbound, ex.method, ex.target,
                  host, ex.status, ex.destination_service, ex.destination_version, address,
                  ex.t0, end, failed, ex.events)
        if trace_id in self.wanted:
            self._export((record,), FAILED if failed else WANTED)
            return True
        if failed:
            return self._mark(trace_id, FAILED, record) is not None
        slow = self.slow
        threshold = (slow.outbound.get(ex.destination_service, slow.floor_s) if outbound
                     else slow.inbound.get(ex.source, slow.floor_s))
        if end - ex.t0 >= threshold:
            return self._mark(trace_id, SLOW, record) is not None
        self.ring.add(record)
        return False

    def signal(self, ex: Finished, status: int) -> bool:
        """Whether an inbound response head tells its calling sidecar to keep the trace."""
        if status >= 500 or ex.trace.trace_id in self.wanted:
            return True
        slow = self.slow
        return self.clock() - ex.t0 >= slow.inbound.get(ex.source, slow.floor_s)

    def hinted(self, trace_id: bytes) -> None:
        """A sidecar this one called answered with ``x-meshui-keep``: keep the trace."""
        if trace_id not in self.wanted:
            self._mark(trace_id, HEADER, None)

    # the control channel ------------------------------------------------------------------

    def export_traces(self, trace_ids: Iterable[bytes]) -> tuple[int, int]:
        """The traces an ``export_traces`` frame names: export what is held, mark them wanted.

        Returns (traces exported from the ring, traces refused by the rate cap). A trace
        not held here costs no token: it is only remembered as wanted (bounded).
        """
        exported = refused = 0
        ring = self.ring
        for trace_id in trace_ids:
            if trace_id in self.wanted:
                continue
            if not ring.holds(trace_id):
                self._want(trace_id, self.clock())
                continue
            spans = self._mark(trace_id, REMOTE, None)
            if spans is None:
                refused += 1
            elif spans:
                exported += 1
        return exported, refused

    # what happens off the request path ----------------------------------------------------

    def observe(self, points: Iterable[Point]) -> None:
        """A closed metrics interval (the telemetry's export task): refresh the thresholds."""
        self.slow.observe(points)

    def sweep(self) -> None:
        """Once a second (the plane's sweep): drop aged records and expired wanted traces."""
        now = self.clock()
        self.ring.sweep(now)
        wanted = self.wanted
        while wanted:
            trace_id = next(iter(wanted))
            if wanted[trace_id] > now:
                break
            del wanted[trace_id]

    # marking and exporting ------------------------------------------------------------------

    def _mark(self, trace_id: bytes, reason: str, record: Record | None) -> int | None:
        """Keep ``trace_id`` (a token permitting): export what is held and ``record``.

        Returns the spans exported, or None when the keep rate refused the trace.
        """
        now = self.clock()
        if not self._take_token(now):
            self.refused[reason] += 1
            if record is not None:
                self.ring.add(record)  # still there if it is asked for once tokens are back
            return None
        self.marked[reason] += 1
        self._want(trace_id, now)
        records = self.ring.take(trace_id, now)
        if record is not None:
            records.append(record)
        if records:
            self._export(records, reason)
        return len(records)

    def _want(self, trace_id: bytes, now: float) -> None:
        wanted = self.wanted
        wanted.pop(trace_id, None)  # to the end: the dict stays in expiry order
        wanted[trace_id] = now + self.config.wanted_ttl_s
        while len(wanted) > self.config.max_wanted:
            del wanted[next(iter(wanted))]
            self.wanted_evicted += 1

    def _take_token(self, now: float) -> bool:
        rate = self.config.keep_rate
        tokens = min(rate, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True

    def _export(self, records: Iterable[Record], reason: str) -> None:
        """Hand ``records`` to telemetry as spans with ``meshui.keep`` (and flush soon)."""
        try:
            now = self.clock()
            # Records hold perf_counter seconds; spans want epoch nanoseconds.
            offset = self.wall_ns() - int(now * 1e9)
            sink = self.telemetry
            count = 0
            for record in records:
                sink.record_span(span_of(record, offset, reason))
                count += 1
            self.spans_exported += count
            flush = getattr(sink, "flush_spans_soon", None)
            if flush is not None:
                flush()
        except Exception:  # noqa: BLE001 - never fail a request for telemetry
            log.exception("could not export kept spans")

    # the admin port -------------------------------------------------------------------------

    def prometheus(self) -> str:
        """The admin port's tail-keep families (docs/sidecar.md, "Tail keep")."""
        ring = self.ring
        lines = [
            "# HELP meshui_tail_ring_records Span records held for tail keep.",
            "# TYPE meshui_tail_ring_records gauge",
            f"meshui_tail_ring_records {ring.held()}",
            "# HELP meshui_tail_ring_dropped_total Span records that left the ring unasked, by reason.",
            "# TYPE meshui_tail_ring_dropped_total counter",
            *(f'meshui_tail_ring_dropped_total{{reason="{r}"}} {n}' for r, n in ring.dropped.items()),
            "# HELP meshui_tail_traces_kept_total Traces marked kept here, by reason.",
            "# TYPE meshui_tail_traces_kept_total counter",
            *(f'meshui_tail_traces_kept_total{{reason="{r}"}} {n}' for r, n in self.marked.items()),
            "# HELP meshui_tail_refused_total Traces not kept because the keep rate was spent, by reason.",
            "# TYPE meshui_tail_refused_total counter",
            *(f'meshui_tail_refused_total{{reason="{r}"}} {n}' for r, n in self.refused.items()),
            "# HELP meshui_tail_spans_exported_total Spans exported with meshui.keep.",
            "# TYPE meshui_tail_spans_exported_total counter",
            f"meshui_tail_spans_exported_total {self.spans_exported}",
            "# HELP meshui_tail_wanted Traces whose later spans here are exported.",
            "# TYPE meshui_tail_wanted gauge",
            f"meshui_tail_wanted {len(self.wanted)}",
            "# HELP meshui_tail_wanted_evicted_total Wanted traces forgotten early (set full).",
            "# TYPE meshui_tail_wanted_evicted_total counter",
            f"meshui_tail_wanted_evicted_total {self.wanted_evicted}",
            "# HELP meshui_tail_frames_total export_traces frames from the control plane, by result.",
            "# TYPE meshui_tail_frames_total counter",
            *(f'meshui_tail_frames_total{{result="{r}"}} {n}' for r, n in self.frames.items()),
        ]
        return "\n".join(lines) + "\n"


def span_attributes(method: bytes, target: bytes, host: bytes | None, status: int,
                    destination: str, destination_version: str, address: str | None) -> dict[str, Any]:
    """A sidecar span's attributes (docs/telemetry.md, "Spans"), sampled or kept."""
    split = split_target(target)
    path = (split[1] if split else target).split(b"?", 1)[0]
    return {
        "http.request.method": method.decode("latin-1"),
        "url.path": path.decode("latin-1"),
        "http.response.status_code": status,
        "server.address": server_address(address, host, method, target),
        "destination.service": destination,
        "destination.version": destination_version,
    }


def server_address(address: str | None, host: bytes | None, method: bytes, target: bytes) -> str:
    """The instance dialled (its address), or else the host asked for (an unregistered one)."""
    if address is not None:
        return address
    requested = host
    if requested is None and method == b"CONNECT":
        requested = target  # authority-form: the host the client wanted a tunnel to
    return host_name(requested).decode("latin-1") if requested else ""


def span_of(record: Record, offset_ns: int, reason: str) -> SpanData:
    """A record as a ``SpanData`` with ``meshui.keep``; ``offset_ns``: epoch ns - perf ns."""
    (trace_id, span_id, parent, outbound, method, target, host, status, destination,
     version, address, t0, end, failed, events) = record
    attributes = span_attributes(method, target, host, status, destination, version, address)
    attributes[KEEP_ATTRIBUTE] = True
    attributes[KEEP_REASON_ATTRIBUTE] = reason
    return SpanData(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=f"{method.decode('latin-1')} {destination}",
        kind="client" if outbound else "server",
        start_ns=int(t0 * 1e9) + offset_ns,
        end_ns=int(end * 1e9) + offset_ns,
        attributes=attributes,
        error=failed,
        events=tuple(events) if events else (),
    )
