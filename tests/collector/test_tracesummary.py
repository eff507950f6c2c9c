"""The trace store's pure parts: summaries, slow calls, gathering, and decoding spans back."""

from __future__ import annotations

import orjson

from collector import otlp_traces
from collector.edgelatency import EdgeLatency
from collector.stats import CollectorStats
from collector.traceconnector import TraceStoreConfig, TraceStoreConnector
from collector.tracedecode import decode_spans
from collector.tracesummary import TraceChunk
from tests.clock import FakeClock
from tests.collector.trace_build import CLIENT, INTERNAL, SERVER, S, batch, export


class Chunks:
    def __init__(self) -> None:
        self.chunks: list[TraceChunk] = []

    def add_chunk(self, chunk: TraceChunk) -> None:
        self.chunks.append(chunk)


def connector(**config: object) -> tuple[TraceStoreConnector, Chunks, FakeClock, CollectorStats]:
    sink, clock, stats = Chunks(), FakeClock(), CollectorStats()
    return TraceStoreConnector(sink, TraceStoreConfig(**config), stats, clock=clock), sink, clock, stats  # type: ignore[arg-type]


def test_a_trace_is_handed_over_whole_once_its_wait_is_over() -> None:
    store, sink, clock, _ = connector(wait_s=2.0)
    store.consume(batch(S("web", 1, 1, kind=CLIENT, attributes={"peer.service": "api"}, ms=9)))
    clock.advance(1.0)
    store.consume(batch(S("api", 1, 2, parent=1, kind=SERVER, ms=8,
                          attributes={"http.request.method": "GET", "http.route": "/a/{id}"})))
    assert store.sweep() == 0
    clock.advance(1.0)
    assert store.sweep() == 1
    (chunk,) = sink.chunks
    assert chunk.span_count == 2 and chunk.edges == ["web\x1fapi"] and chunk.calls == [("web\x1fapi", 9.0)]
    assert chunk.operations == ["GET /", "GET /a/{id}"]  # the root's and the server's
    assert chunk.root_service == "web" and chunk.duration_us == 9000
    assert not chunk.kept and not chunk.error


def test_an_unanswered_client_span_is_a_call_to_its_destination_and_a_root_server_span_from_unknown() -> None:
    store, sink, _, _ = connector()
    store.consume(batch(S("web", 1, 1, kind=SERVER),
                        S("web", 1, 2, parent=1, kind=CLIENT, attributes={"destination.service": "db",
                                                                          "server.address": "10.0.0.1:5432"}),
                        S("web", 1, 3, parent=1, kind=INTERNAL)))
    store.flush()
    assert sink.chunks[0].edges == ["unknown\x1fweb", "web\x1fdb"]


def test_past_its_span_bound_the_oldest_trace_is_handed_over_early_and_big_traces_are_cut() -> None:
    store, sink, _, stats = connector(max_pending_spans=3, max_spans_per_trace=2)
    store.consume(batch(S("a", 1, 1), S("a", 1, 2), S("a", 1, 3), S("a", 2, 4), S("a", 3, 5)))
    assert stats.trace_spans_dropped["too_large"] == 1
    assert [c.trace_id[-1] for c in sink.chunks] == [2] and store.pending_spans == 2


def test_errors_and_the_keep_flag_and_slow_calls_go_to_the_kept_tier() -> None:
    store, sink, _, _ = connector(slow_min_calls=50)
    for n in range(100):
        store.consume(batch(S("a", n, 1, ms=5.0)))
    store.consume(batch(S("a", 100, 1, ms=50.0), S("a", 101, 1, error=True),
                        S("a", 102, 1, attributes={"meshui.keep": "true"})))
    store.flush()
    assert [c.kept for c in sink.chunks[-3:]] == [True, True, True]
    assert not any(c.kept for c in sink.chunks[:100])


def test_an_edge_has_no_slow_calls_before_min_calls_and_then_its_p99_decides() -> None:
    latency = EdgeLatency(min_calls=10)
    assert not any(latency.is_slow("e", 10.0) for _ in range(10))
    assert latency.threshold("e") is not None
    assert latency.is_slow("e", 1000.0) and not latency.is_slow("e", 5.0)


def test_decoded_spans_come_in_tree_order_with_orphans_and_cycles_as_roots() -> None:
    store, sink, _, _ = connector()
    store.consume(batch(S("a", 1, 3, parent=2, start_s=3.0), S("a", 1, 2, parent=1, start_s=2.0),
                        S("a", 1, 1, start_s=1.0), S("a", 1, 9, parent=8, start_s=0.5),
                        S("a", 1, 5, parent=6), S("a", 1, 6, parent=5), S("a", 1, 4, parent=1, start_s=1.5)))
    store.flush()
    spans = decode_spans(sink.chunks[0].blob)
    order = [(int(s["span_id"], 16) - 1, s["depth"]) for s in spans]
    assert order[:5] == [(9, 0), (1, 0), (4, 1), (2, 1), (3, 2)]
    assert {n for n, _ in order[5:]} == {5, 6} and spans[0]["parent_missing"]


def test_spans_sent_as_otlp_json_decode_to_the_same_shape_as_protobuf() -> None:
    request = export(S("web", 1, 1, kind=CLIENT, attributes={"n": 3, "f": 1.5, "ok": True, "s": "x"},
                       events=[("retry", 1_700_000_000.001, {"attempt": 2})], error=True))
    pb_span = request.resource_spans[0].scope_spans[0].spans[0]
    body = orjson.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": pb_span.trace_id.hex(), "spanId": pb_span.span_id.hex(), "name": pb_span.name,
            "kind": 3, "startTimeUnixNano": str(pb_span.start_time_unix_nano),
            "endTimeUnixNano": str(pb_span.end_time_unix_nano),
            "status": {"code": 2, "message": "boom"},
            "attributes": [{"key": "n", "value": {"intValue": "3"}},
                           {"key": "f", "value": {"doubleValue": 1.5}},
                           {"key": "ok", "value": {"boolValue": True}},
                           {"key": "s", "value": {"stringValue": "x"}}],
            "events": [{"name": "retry", "timeUnixNano": str(pb_span.events[0].time_unix_nano),
                        "attributes": [{"key": "attempt", "value": {"intValue": "2"}}]}]}]}]}]})
    shapes = []
    for decoded in (otlp_traces.decode_protobuf(request.SerializeToString()), otlp_traces.decode_json(body)):
        store, sink, _, _ = connector()
        store.consume(decoded)
        store.flush()
        shapes.append(decode_spans(sink.chunks[0].blob))
    assert shapes[0] == shapes[1]
    assert shapes[0][0]["attributes"] == {"n": 3, "f": 1.5, "ok": True, "s": "x"}
    assert shapes[0][0]["events"][0]["attributes"] == {"attempt": 2}
