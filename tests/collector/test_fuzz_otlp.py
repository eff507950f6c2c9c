"""Property-based fuzzing of both OTLP decoders (protobuf and JSON, traces and metrics).

Cases are mutations of valid exports built from the opentelemetry-proto classes: extreme
and boundary numbers, NaN and infinities, huge scales and offsets, ids of the wrong length,
odd strings, and in OTLP/JSON any field replaced by a value of the wrong type; the
protobuf bytes themselves are sometimes cut or flipped. Each case goes through decode +
validate + cardinality limits + the connectors into a graph writer, in process. The
property: never an exception (only 200, a partial success or 400), and whatever was
accepted is within the store's bounds. A few cases go through the real ASGI receiver.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector import graphstore, otlp_metrics, otlp_traces, seriesstore, validation
from collector.cardinality import CardinalityConfig, CardinalityLimiter
from collector.errors import InvalidRequest
from collector.graphwriter import GraphWriter
from collector.receiver import OTLPHttpReceiver
from collector.records import MetricBatch, TraceBatch
from collector.service import Collector, CollectorConfig
from collector.servicegraph import ServiceGraphConnector
from collector.sidecar_metrics import SidecarMetricsConnector
from collector.sidecar_points import SIDECAR_COUNTERS, SIDECAR_METRIC
from proxies.telemetry import histogram
from tests.clock import FakeClock
from tests.collector.otlp_build import T0, set_attributes, to_json_dict
from tests.collector.test_receiver_counts import call
from tests.fuzzing import examples, outcome

pytestmark = pytest.mark.fuzz

U64 = 2**64 - 1
# Numbers at the edges the rules draw: around 2^32 (MAX_POINT_COUNT), 2^53, int64, uint64.
big_ints = st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1, 2**32, 2**32 + 1, 2**53, 2**63 - 1, 2**63, U64])
counts = st.one_of(st.integers(0, 50), big_ints, st.integers(0, U64))
sint32 = st.one_of(
    st.sampled_from([-(2**31), -11, -10, -1, 0, 3, 20, 21, 2**31 - 1]), st.integers(-(2**31), 2**31 - 1)
)
doubles = st.one_of(
    st.sampled_from([0.0, -0.0, 1e-320, 1e308, 1.7976931348623157e308, math.inf, -math.inf, math.nan]),
    st.floats(allow_nan=True, allow_infinity=True),
)
odd_text = st.one_of(
    st.sampled_from(["", "api", "web", "unknown", "a\x1fb", "tab\there", "\u00a0", "é", "x" * 256, "😀"]),
    st.text(max_size=40),
)
statuses = st.one_of(
    st.integers(-1, 1000),
    st.sampled_from([2**31, 2**63 - 1, -(2**63)]),
    st.sampled_from(["200", "503", "²", " 500", "5e2", "OK"]),
    doubles,
    st.booleans(),
)


@st.composite
def point_attributes(draw: st.DrawFn) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "meshui.direction": draw(st.sampled_from(["outbound", "inbound", "sideways", ""])),
        "destination.service": draw(st.one_of(st.sampled_from(["api", "db"]), odd_text)),
        "source.service": draw(st.one_of(st.sampled_from(["web", "api"]), odd_text)),
    }
    if draw(st.booleans()):
        attributes["http.response.status_code"] = draw(statuses)
    if draw(st.booleans()):
        attributes["destination.version"] = draw(odd_text)
    if draw(st.booleans()):
        attributes["meshui.source.sidecar"] = draw(st.booleans())
    return attributes


def valid_buckets(total: int, width: int) -> list[int]:
    """``width`` bucket counts summing to ``total`` (the shape a good point has)."""
    if width == 0:
        return []
    head = [total // width] * width
    head[0] += total - sum(head)
    return head


@st.composite
def metrics_requests(draw: st.DrawFn) -> ExportMetricsServiceRequest:
    """A sidecar export: mostly well-formed points with one or more fields pushed to extremes."""
    request = ExportMetricsServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        rm = request.resource_metrics.add()
        set_attributes(
            rm.resource.attributes,
            {
                "service.name": draw(st.one_of(st.just("web"), odd_text)),
                "meshui.sidecar": draw(st.booleans() | st.just(True)),
            },
        )
        for _ in range(draw(st.integers(1, 3))):
            name = draw(st.sampled_from([SIDECAR_METRIC, SIDECAR_METRIC, *SIDECAR_COUNTERS, "other.metric"]))
            kind = draw(st.sampled_from(["exponential_histogram", "histogram", "sum", "gauge"]))
            metric = rm.scope_metrics.add().metrics.add(name=name)
            data = getattr(metric, kind)
            if kind != "gauge":
                data.aggregation_temporality = draw(st.sampled_from([1, 1, 2, 0, 3]))
            for _ in range(draw(st.integers(1, 4))):
                point = data.data_points.add(
                    start_time_unix_nano=draw(st.sampled_from([0, T0, U64])), time_unix_nano=T0 + 1
                )
                set_attributes(point.attributes, draw(point_attributes()))
                total = draw(counts)
                if kind == "exponential_histogram":
                    point.count = total
                    point.scale = draw(st.one_of(st.just(3), sint32))
                    width = draw(st.integers(0, 6))
                    point.positive.offset = draw(st.one_of(st.just(histogram.bucket_index(10.0)), sint32))
                    buckets = draw(
                        st.one_of(st.just(valid_buckets(total, width)), st.lists(counts, max_size=6))
                    )
                    point.positive.bucket_counts.extend(buckets)
                    if draw(st.booleans()):
                        point.zero_count = draw(counts)
                    if draw(st.booleans()):
                        point.negative.offset = draw(sint32)
                        point.negative.bucket_counts.extend(draw(st.lists(counts, max_size=3)))
                elif kind == "histogram":
                    point.count = total
                    bounds = draw(
                        st.one_of(
                            st.just([1.0, 10.0, 100.0]),
                            st.lists(doubles, max_size=5),
                            st.just([1e308, 1.5e308]),
                        )
                    )
                    point.explicit_bounds.extend(bounds)
                    width = len(bounds) + 1
                    point.bucket_counts.extend(
                        draw(st.one_of(st.just(valid_buckets(total, width)), st.lists(counts, max_size=7)))
                    )
                else:
                    if draw(st.booleans()):
                        point.as_int = draw(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-3, 50)))
                    else:
                        point.as_double = draw(doubles)
                if kind in ("exponential_histogram", "histogram"):
                    for extreme in ("sum", "min", "max"):
                        if draw(st.booleans()):
                            setattr(point, extreme, draw(doubles))
    return request


def ids(size: int) -> st.SearchStrategy[bytes]:
    """Mostly valid ids of ``size`` bytes; one in five of the wrong length or all zero."""
    good = st.integers(1, 6).map(lambda n: n.to_bytes(size, "big"))
    bad = st.binary(max_size=size + 2) | st.just(bytes(size))
    return st.integers(0, 4).flatmap(lambda roll: bad if roll == 0 else good)


@st.composite
def traces_requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 3))):
        rs = request.resource_spans.add()
        resource = {"service.name": draw(st.one_of(st.sampled_from(["web", "api"]), odd_text))}
        if draw(st.booleans()):
            resource["service.version"] = draw(odd_text)
        if draw(st.booleans()):
            resource["meshui.sidecar"] = draw(st.booleans())
        set_attributes(rs.resource.attributes, resource)
        spans = rs.scope_spans.add().spans
        for _ in range(draw(st.integers(1, 5))):
            span = spans.add(
                trace_id=draw(ids(16)),
                span_id=draw(ids(8)),
                parent_span_id=draw(st.just(b"") | ids(8)),
                kind=draw(st.one_of(st.sampled_from([2, 3, 1, 0]), st.integers(-5, 2**31 - 1))),
                start_time_unix_nano=draw(st.one_of(st.just(T0), st.integers(0, U64))),
                end_time_unix_nano=draw(st.one_of(st.just(T0 + 10**7), st.integers(0, U64))),
            )
            span.status.code = draw(st.one_of(st.sampled_from([0, 1, 2]), st.integers(-3, 2**31 - 1)))
            attributes: dict[str, Any] = {}
            for key in ("http.response.status_code", "http.status_code", "peer.service", "server.address"):
                if draw(st.integers(0, 3)) == 0:
                    attributes[key] = draw(statuses if "status" in key else odd_text)
            set_attributes(span.attributes, attributes)
    return request


# -- JSON: the same messages, then any one field given a value of another type --------------
json_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),  # what orjson can write; past it JSON numbers read as floats
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "NaN", "Infinity", "-1", "1e308", "0x10", "1_0", " 7", "AAAAAAAAAAAAAAAAAAAAAQ=="]),
    st.text(max_size=10),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.sampled_from(["a", "stringValue", "intValue"]), st.integers(-3, 3), max_size=2),
)


def json_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += json_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += json_paths(value, (*path, index))
    return found


@st.composite
def json_bodies(draw: st.DrawFn, messages: st.SearchStrategy[Any]) -> bytes:
    document: Any = to_json_dict(draw(messages))
    for _ in range(draw(st.integers(0, 3))):
        paths = json_paths(document)
        path = draw(st.sampled_from(paths))
        junk = draw(json_junk)
        if not path:
            document = junk
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = junk
    return orjson.dumps(document)


@st.composite
def protobuf_bodies(draw: st.DrawFn, messages: st.SearchStrategy[Any]) -> bytes:
    body = bytearray(draw(messages).SerializeToString())
    mutation = draw(st.sampled_from(["none"] * 8 + ["truncate", "flip"]))
    if body and mutation == "truncate":
        del body[draw(st.integers(0, len(body) - 1)) :]
    elif body and mutation == "flip":
        for _ in range(draw(st.integers(1, 4))):
            body[draw(st.integers(0, len(body) - 1))] = draw(st.integers(0, 255))
    return bytes(body)


# -- the property ---------------------------------------------------------------------------
def check_names(*names: str) -> None:
    for name in names:
        assert name == validation.name(name, "name", required=False)


def check_metrics(batch: MetricBatch) -> None:
    for point in batch.points:
        assert 0 <= point.count <= validation.MAX_POINT_COUNT
        assert all(histogram.MIN_INDEX <= i <= histogram.MAX_INDEX for i in point.latency)
        assert all(0 < n <= validation.MAX_POINT_COUNT for n in point.latency.values())
        assert sum(point.latency.values()) in (0, point.count)
        assert 0 <= point.status <= validation.MAX_HTTP_STATUS
        check_names(point.source, point.destination, point.destination_version)
    for counter in batch.counters:
        assert 0 <= counter.value <= validation.MAX_POINT_COUNT
        check_names(counter.source, counter.destination)


def check_traces(batch: TraceBatch) -> None:
    for group in batch.groups:
        check_names(group.service, group.version)
        for span in group.spans:
            assert len(span.trace_id) == 16 and len(span.span_id) == 8
            assert len(span.parent_span_id) in (0, 8)
            assert math.isfinite(span.duration_ms) and span.duration_ms >= 0
            assert 0 <= span.http_status <= validation.MAX_HTTP_STATUS
            check_names(span.peer)


def check_writes(writer: GraphWriter) -> None:
    """What would go to Redis: integers within the field limit, names that split cleanly."""
    kinds = {("e", 4), ("ev", 5), ("es", 4), ("n", 3), ("nv", 4), ("i", 4), ("v", 3), ("r", 4),
             ("rn", 3), ("ri", 4)}
    increments = writer.take()
    for fields in increments.values():
        for name, value in fields.items():
            assert 0 < value <= validation.FIELD_LIMIT, (name, value)
            parts = name.split(graphstore.SEP)
            assert (parts[0], len(parts)) in kinds, name
            assert parts[0] not in ("ev", "nv", "i", "ri") or parts[-2], name  # no breakdown of nothing
    series = seriesstore.series_increments(increments)
    assert sum(map(len, series.values())) >= sum(
        1 for fields in increments.values() for name in fields if not name.startswith("v" + graphstore.SEP))
    for key, texts in writer.take_exemplars().items():
        assert key.startswith(seriesstore.EXEMPLAR_PREFIX)
        for text in texts.values():
            exemplar = seriesstore.parse_exemplar(text)
            assert exemplar is not None and len(exemplar.trace_id) == 32 and len(exemplar.span_id) == 16


def run(target: str, decode: Any, body: bytes, check: Any, consume: Any) -> None:
    try:
        batch = decode(body)
    except InvalidRequest:
        outcome(target, "400")
        return
    check(batch)
    limiter = CardinalityLimiter(
        CardinalityConfig(max_services=8, max_edges=8, max_series=64), clock=FakeClock(0.0)
    )
    (limiter.limit_traces if isinstance(batch, TraceBatch) else limiter.limit_metrics)(batch)
    writer = GraphWriter(clock=FakeClock(1000.0), limiter=limiter)
    consume(writer, batch)
    check_writes(writer)
    outcome(target, "partial" if batch.rejected.count else "200")


def consume_metrics(writer: GraphWriter, batch: MetricBatch) -> None:
    SidecarMetricsConnector(writer, started_ns=0).consume(batch)


def consume_traces(writer: GraphWriter, batch: TraceBatch) -> None:
    connector = ServiceGraphConnector(writer, clock=FakeClock(0.0))
    connector.consume(batch)
    connector.flush_pending()


@examples(cost=2)
@given(protobuf_bodies(metrics_requests()))
def test_fuzz_metrics_protobuf_decoder(body: bytes) -> None:
    run("collector.metrics.protobuf", otlp_metrics.decode_protobuf, body, check_metrics, consume_metrics)


@examples(cost=2)
@given(json_bodies(metrics_requests()))
def test_fuzz_metrics_json_decoder(body: bytes) -> None:
    run("collector.metrics.json", otlp_metrics.decode_json, body, check_metrics, consume_metrics)


@examples(cost=2)
@given(protobuf_bodies(traces_requests()))
def test_fuzz_traces_protobuf_decoder(body: bytes) -> None:
    run("collector.traces.protobuf", otlp_traces.decode_protobuf, body, check_traces, consume_traces)


@examples(cost=2)
@given(json_bodies(traces_requests()))
def test_fuzz_traces_json_decoder(body: bytes) -> None:
    run("collector.traces.json", otlp_traces.decode_json, body, check_traces, consume_traces)


@examples(cost=4)
@given(
    st.sampled_from(["/v1/metrics", "/v1/traces"]).flatmap(
        lambda path: st.tuples(
            st.just(path),
            st.sampled_from(["application/x-protobuf", "application/json"]).flatmap(
                lambda content_type: st.tuples(
                    st.just(content_type),
                    (protobuf_bodies if content_type.endswith("protobuf") else json_bodies)(
                        metrics_requests() if path == "/v1/metrics" else traces_requests()
                    ),
                )
            ),
        )
    )
)
async def test_fuzz_the_asgi_receiver_answers_200_or_400(case: tuple[str, tuple[str, bytes]]) -> None:
    path, (content_type, body) = case
    # A real pipeline (queue, limiter, exporter), not started: nothing here talks to Redis.
    collector = Collector(CollectorConfig(redis_url="redis://127.0.0.1:1/0"), layer=object())
    app: OTLPHttpReceiver = collector.receiver
    status, _, response = await call(app, "POST", path, body, content_type)
    assert status in (200, 400), (status, response[:200])
    partial = status == 200 and response not in (b"", b"{}")
    outcome("collector.receiver", "partial" if partial else status)
    await collector.redis.aclose()
