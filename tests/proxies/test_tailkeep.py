"""Tail keep's decisions: what is exported with meshui.keep, what is held, what is refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from proxies.telemetry.aggregate import RequestAggregator
from proxies.telemetry.model import SpanData
from proxies.telemetry.slowedges import SlowEdges
from proxies.telemetry.tailkeep import TailKeepConfig, TailKeeper
from proxies.telemetry.tracecontext import TraceContext
from tests.clock import FakeClock


@dataclass
class Request:
    """What an exchange holds when it ends (tailkeep.Finished)."""

    trace: TraceContext
    t0: float = 0.0
    outbound: bool = True
    method: bytes = b"GET"
    target: bytes = b"http://catalog/items?page=2"
    host: bytes | None = b"catalog"
    status: int = 200
    source: str = "frontend"
    destination_service: str = "catalog"
    destination_version: str = "v1"
    endpoint: Any = None
    events: list[tuple[int, str, dict[str, Any]]] | None = None


@dataclass
class Spans:
    spans: list[SpanData] = field(default_factory=list)
    flushes: int = 0

    def record_span(self, span: SpanData) -> None:
        self.spans.append(span)

    def flush_spans_soon(self) -> None:
        self.flushes += 1

    def of(self, trace: int) -> list[SpanData]:
        return [s for s in self.spans if s.trace_id == tid(trace)]


def tid(trace: int) -> bytes:
    return trace.to_bytes(16, "big")


def context(trace: int, span: int = 1) -> TraceContext:
    return TraceContext(tid(trace), b"\x00" * 7 + b"\x09", span.to_bytes(8, "big"), False, None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(100.0)


@pytest.fixture
def sink() -> Spans:
    return Spans()


def keeper(clock: FakeClock, sink: Spans, **config: Any) -> TailKeeper:
    return TailKeeper(TailKeepConfig(**config), sink, clock=clock, wall_ns=lambda: 5_000_000_000_000)


def end(tail: TailKeeper, clock: FakeClock, request: Request, seconds: float = 0.005,
        failed: bool = False) -> bool:
    """``request`` started ``seconds`` ago and ends now; whether its span went out now."""
    request.t0 = clock.now - seconds
    return tail.add(request, clock.now, failed)


def test_a_fast_request_is_only_held_in_the_ring(clock: FakeClock, sink: Spans) -> None:
    tail = keeper(clock, sink)
    assert end(tail, clock, Request(context(1), 0)) is False  # no exemplar: nothing exported

    assert sink.spans == [] and tail.ring.holds(tid(1))


def test_a_failed_request_is_exported_at_once_with_meshui_keep_and_its_held_spans_too(
    clock: FakeClock, sink: Spans,
) -> None:
    tail = keeper(clock, sink)
    end(tail, clock, Request(context(1, span=1), 0, outbound=False, source="unknown",
                             destination_service="frontend", target=b"/"))
    clock.advance(0.01)
    # Exported now: the caller makes it its latency bucket's exemplar.
    assert end(tail, clock, Request(context(1, span=2), 0, status=503), failed=True) is True

    spans = sink.of(1)
    assert [s.span_id[-1] for s in spans] == [1, 2]  # the held one first, then the failed one
    failed = spans[1]
    assert failed.attributes["meshui.keep"] is True
    assert failed.attributes["meshui.keep.reason"] == "failed"
    assert failed.error is True and failed.kind == "client" and failed.name == "GET catalog"
    assert failed.attributes["url.path"] == "/items" and failed.attributes["server.address"] == "catalog"
    assert spans[0].kind == "server" and spans[0].attributes["meshui.keep.reason"] == "failed"
    assert tail.marked["failed"] == 1 and tail.spans_exported == 2 and sink.flushes >= 1
    assert tid(1) in tail.wanted and not tail.ring.holds(tid(1))


def test_later_spans_of_a_kept_trace_are_exported_as_they_end(clock: FakeClock, sink: Spans) -> None:
    tail = keeper(clock, sink)
    end(tail, clock, Request(context(1, span=1), 0, status=500), failed=True)
    end(tail, clock, Request(context(1, span=2), 0, outbound=False, destination_service="frontend"))

    assert [s.attributes["meshui.keep.reason"] for s in sink.of(1)] == ["failed", "wanted"]
    assert tail.marked["failed"] == 1  # marked once; the later span took no token


def test_span_times_are_the_requests_own_in_epoch_nanoseconds(clock: FakeClock, sink: Spans) -> None:
    tail = keeper(clock, sink)  # wall clock: 5000 s while the perf clock reads 100 s
    end(tail, clock, Request(context(1), 0, status=502), seconds=0.25, failed=True)

    (span,) = sink.spans
    assert span.end_ns == 5_000_000_000_000
    assert span.end_ns - span.start_ns == pytest.approx(250_000_000, abs=1000)


def test_a_request_at_least_the_floor_is_slow_and_kept(clock: FakeClock, sink: Spans) -> None:
    tail = keeper(clock, sink, slow_ms=100)
    end(tail, clock, Request(context(1)), seconds=0.099)
    end(tail, clock, Request(context(2)), seconds=0.101)

    assert sink.of(1) == []
    assert [s.attributes["meshui.keep.reason"] for s in sink.of(2)] == ["slow"]
    assert tail.marked["slow"] == 1


def test_above_the_floor_an_edge_is_slow_only_past_its_running_p99(clock: FakeClock, sink: Spans) -> None:
    tail = keeper(clock, sink, slow_ms=100)
    aggregator = RequestAggregator(0)
    for _ in range(300):  # catalog usually takes 300 ms; its p99 is about that
        aggregator.record("outbound", "frontend", "catalog", "v1", 200, True, 0.3)
    tail.observe(aggregator.take(1).unique)
    threshold = tail.slow.threshold_s(True, "catalog")
    assert 0.3 <= threshold <= 0.33  # within a bucket (~9%)

    end(tail, clock, Request(context(1)), seconds=0.2)  # slow for the floor, not for catalog
    end(tail, clock, Request(context(2)), seconds=0.5)
    end(tail, clock, Request(context(3), destination_service="reviews"), seconds=0.2)  # another edge

    assert sink.of(1) == [] and len(sink.of(2)) == 1 and len(sink.of(3)) == 1


def test_the_keep_rate_refuses_traces_past_it_and_counts_them(clock: FakeClock, sink: Spans) -> None:
    tail = keeper(clock, sink, keep_rate=2)
    for trace in (1, 2, 3):
        end(tail, clock, Request(context(trace), 0, status=500), failed=True)

    assert len(sink.of(1)) == len(sink.of(2)) == 1 and sink.of(3) == []
    assert tail.refused["failed"] == 1 and tid(3) not in tail.wanted
    assert tail.ring.holds(tid(3))  # still there if the trace is asked for later
    clock.advance(0.5)  # one token back
    assert tail.export_traces([tid(3)]) == (1, 0)
    assert [s.attributes["meshui.keep.reason"] for s in sink.of(3)] == ["remote"]


def test_export_traces_exports_what_is_held_and_marks_the_rest_wanted(clock: FakeClock, sink: Spans) -> None:
    tail = keeper(clock, sink)
    end(tail, clock, Request(context(1, span=1), 0))
    end(tail, clock, Request(context(1, span=2), 0, outbound=False, destination_service="frontend"))

    assert tail.export_traces([tid(1), tid(2)]) == (1, 0)
    assert [s.attributes["meshui.keep.reason"] for s in sink.of(1)] == ["remote", "remote"]
    assert tail.marked["remote"] == 1
    # Trace 2 was not held here: no token spent, but its spans that end later go out.
    assert tid(2) in tail.wanted
    end(tail, clock, Request(context(2), 0))
    assert [s.attributes["meshui.keep.reason"] for s in sink.of(2)] == ["wanted"]
    # Asked again (another collector, a repeat): nothing is exported twice.
    assert tail.export_traces([tid(1)]) == (0, 0)
    assert len(sink.of(1)) == 2


def test_a_flood_of_export_traces_exports_at_most_the_keep_rate(clock: FakeClock, sink: Spans) -> None:
    tail = keeper(clock, sink, keep_rate=10, max_wanted=50)
    for trace in range(1, 101):
        end(tail, clock, Request(context(trace), 0))

    exported, refused = tail.export_traces([tid(t) for t in range(1, 101)])
    exported_again, _ = tail.export_traces([tid(t) for t in range(101, 1101)])  # not held

    assert (exported, refused) == (10, 90) and exported_again == 0
    assert len(sink.spans) == 10 and tail.refused["remote"] == 90
    assert len(tail.wanted) == 50 and tail.wanted_evicted > 0  # bounded, oldest out first


def test_wanted_traces_are_forgotten_after_their_ttl(clock: FakeClock, sink: Spans) -> None:
    tail = keeper(clock, sink, wanted_ttl_s=30)
    end(tail, clock, Request(context(1), 0, status=500), failed=True)
    clock.advance(29)
    tail.sweep()
    assert tid(1) in tail.wanted
    clock.advance(2)
    tail.sweep()
    assert tid(1) not in tail.wanted
    end(tail, clock, Request(context(1), 0))
    assert len(sink.of(1)) == 1 and tail.ring.holds(tid(1))


def test_the_sweep_drops_records_past_the_ring_age(clock: FakeClock, sink: Spans) -> None:
    tail = keeper(clock, sink, ring_age_s=6)
    end(tail, clock, Request(context(1), 0))
    end(tail, clock, Request(context(2), 0))
    clock.advance(6.1)
    tail.sweep()

    assert tail.export_traces([tid(1)]) == (0, 0) and sink.spans == []  # too old to hand out
    clock.advance(2.0)  # past the age and a generation more: gone
    tail.sweep()
    assert not tail.ring.holds(tid(2)) and tail.ring.held() == 0


def test_an_inbound_response_signals_its_caller_when_failed_wanted_or_slow(
    clock: FakeClock, sink: Spans,
) -> None:
    tail = keeper(clock, sink, slow_ms=100)
    fresh = Request(context(1), clock.now - 0.01, outbound=False)
    assert not tail.signal(fresh, 200)
    assert tail.signal(fresh, 503)
    assert tail.signal(Request(context(2), clock.now - 0.2, outbound=False), 200)
    tail.export_traces([tid(3)])
    assert tail.signal(Request(context(3), clock.now, outbound=False), 200)


def test_a_hint_from_a_called_sidecar_keeps_the_trace_once(clock: FakeClock, sink: Spans) -> None:
    tail = keeper(clock, sink)
    end(tail, clock, Request(context(1, span=1), 0))
    tail.hinted(tid(1))
    tail.hinted(tid(1))

    assert [s.attributes["meshui.keep.reason"] for s in sink.of(1)] == ["header"]
    assert tail.marked["header"] == 1


def test_events_of_a_kept_request_become_span_events(clock: FakeClock, sink: Spans) -> None:
    tail = keeper(clock, sink)
    events = [(1, "retry", {"attempt": 2, "reason": "5xx"})]
    end(tail, clock, Request(context(1), 0, status=503, events=events), failed=True)

    assert sink.spans[0].events == ((1, "retry", {"attempt": 2, "reason": "5xx"}),)


def test_the_admin_text_counts_what_tail_keep_did(clock: FakeClock, sink: Spans) -> None:
    tail = keeper(clock, sink, keep_rate=1)
    end(tail, clock, Request(context(1), 0))
    end(tail, clock, Request(context(2), 0, status=500), failed=True)
    end(tail, clock, Request(context(3), 0, status=500), failed=True)
    text = tail.prometheus()

    assert "meshui_tail_ring_records 2\n" in text
    assert 'meshui_tail_traces_kept_total{reason="failed"} 1\n' in text
    assert 'meshui_tail_refused_total{reason="failed"} 1\n' in text
    assert "meshui_tail_spans_exported_total 1\n" in text
    assert "meshui_tail_wanted 1\n" in text


def test_bad_settings_name_their_flag() -> None:
    problems = TailKeepConfig(ring_size=-1, ring_age_s=0, slow_ms=0, keep_rate=0).validate()
    assert [p.split()[0] for p in problems] == [
        "--tail-ring", "--tail-ring-age", "--tail-slow-ms", "--tail-keep-rate"]
    assert TailKeepConfig().validate() == [] and not TailKeepConfig(ring_size=0).enabled


def test_slow_edges_keep_inbound_and_outbound_apart_and_wait_for_enough_calls() -> None:
    edges = SlowEdges(floor_ms=10, min_calls=50)
    aggregator = RequestAggregator(0)
    for _ in range(49):
        aggregator.record("inbound", "frontend", "catalog", "v1", 200, True, 0.5)
    for _ in range(60):
        aggregator.record("outbound", "catalog", "frontend", "v1", 200, True, 0.05)
    edges.observe(aggregator.take(1).unique)

    assert edges.threshold_s(False, "frontend") == 0.01  # 49 calls: the floor alone
    assert 0.05 <= edges.threshold_s(True, "frontend") <= 0.055
    aggregator = RequestAggregator(1)
    aggregator.record("inbound", "frontend", "catalog", "v1", 500, True, 0.5)
    edges.observe(aggregator.take(2).unique)
    assert 0.5 <= edges.threshold_s(False, "frontend") <= 0.55  # 50 calls now


def test_slow_edges_follow_recent_traffic() -> None:
    edges = SlowEdges(floor_ms=1, min_calls=50, decay_at=200)
    for duration in (1.0, 0.01):  # an edge that used to take 1 s and now takes 10 ms
        for _ in range(10):
            aggregator = RequestAggregator(0)
            for _ in range(100):
                aggregator.record("outbound", "a", "b", "v1", 200, True, duration)
            edges.observe(aggregator.take(1).unique)

    assert edges.threshold_s(True, "b") < 0.1
