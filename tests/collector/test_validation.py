"""One test per validation rule, in both encodings: the bad item is rejected by name, the rest kept."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector import otlp_metrics, otlp_traces, validation
from collector.receiver import OTLPHttpReceiver
from collector.records import MetricBatch, TraceBatch
from proxies.telemetry import histogram
from tests.collector.otlp_build import sidecar_metrics, spans, to_json, to_json_dict
from tests.collector.test_receiver_counts import Pipeline, call

GOOD = {"count": 3}


def decode_metrics(request: Any, encoding: str) -> MetricBatch:
    if encoding == "pb":
        return otlp_metrics.decode_protobuf(request.SerializeToString())
    return otlp_metrics.decode_json(to_json(request))


def decode_traces(request: Any, encoding: str) -> TraceBatch:
    if encoding == "pb":
        return otlp_traces.decode_protobuf(request.SerializeToString())
    return otlp_traces.decode_json(to_json(request))


def rejected_one_of_two(batch: MetricBatch, words: str) -> None:
    """The bad point is rejected with a message holding ``words``; the good one is kept."""
    assert batch.point_count == 2
    assert batch.rejected.count == 1, batch.rejected
    assert words in batch.rejected.message
    assert [p.count for p in batch.points] == [3]


ENCODINGS = pytest.mark.parametrize("encoding", ["pb", "json"])

# (what the rule is, the bad point, words of the message)
EXPONENTIAL_RULES = [
    ("count past 2^32 (the issue's 2^63)", {"count": 2**63}, "count 9223372036854775808 is out of range"),
    ("scale above 20", {"count": 1, "scale": 21}, "scale 21 is out of range -10..20"),
    ("scale below -10", {"count": 1, "scale": -11}, "scale -11 is out of range"),
    ("low scale, huge offset", {"count": 1, "scale": -10, "offset": 2**31 - 1}, "are outside"),
    ("high scale, offset past a double", {"count": 1, "scale": 20, "offset": -(2**31)}, "are outside"),
    ("buckets not summing to the count", {"count": 5, "buckets": [1, 1]}, "not the count 5"),
    ("zero_count past 2^32", {"count": 1, "zero_count": 2**40, "buckets": [1]}, "zero_count"),
    ("bucket count past 2^32", {"count": 2**33, "buckets": [2**33]}, "out of range"),
    ("NaN sum", {"count": 1, "sum": math.nan}, "sum must be finite"),
    ("infinite max", {"count": 1, "max": math.inf}, "max must be finite"),
    (
        "destination with a control character",
        {"count": 1, "attributes": {"destination.service": "a\x1fb"}},
        "destination.service holds a control",
    ),
    (
        "destination longer than 255",
        {"count": 1, "attributes": {"destination.service": "a" * 256}},
        "longer than 255",
    ),
    (
        "missing destination",
        {"count": 1, "attributes": {"destination.service": None}},
        "destination.service is missing",
    ),
    (
        "status code that is not an integer",
        {"count": 1, "attributes": {"http.response.status_code": "OK"}},
        "http.response.status_code must be an integer",
    ),
    (
        "status code out of range",
        {"count": 1, "attributes": {"http.response.status_code": 10_000}},
        "out of range 0..999",
    ),
    ("bad direction", {"count": 1, "attributes": {"meshui.direction": "sideways"}}, "meshui.direction"),
]


@ENCODINGS
@pytest.mark.parametrize(("rule", "bad", "words"), EXPONENTIAL_RULES, ids=[r[0] for r in EXPONENTIAL_RULES])
def test_an_exponential_point_breaking_a_rule_is_rejected_alone(
    encoding: str, rule: str, bad: dict[str, Any], words: str
) -> None:
    rejected_one_of_two(decode_metrics(sidecar_metrics([bad, GOOD]), encoding), words)


EXPLICIT_RULES = [
    ("NaN bound", {"count": 1, "bounds": [math.nan, 20.0]}, "finite"),
    ("infinite bound", {"count": 1, "bounds": [5.0, math.inf]}, "finite"),
    ("bounds not increasing", {"count": 1, "bounds": [20.0, 5.0]}, "strictly increasing"),
    ("equal bounds", {"count": 1, "bounds": [5.0, 5.0]}, "strictly increasing"),
    ("bucket counts of the wrong length", {"count": 1, "bucket_counts": [1, 0]}, "need one more"),
    (
        "bucket counts not summing to the count",
        {"count": 2, "bucket_counts": [0, 1, 0]},
        "not to the count 2",
    ),
    ("count past 2^32", {"count": 2**63, "bucket_counts": [0, 2**63, 0]}, "out of range"),
]


@ENCODINGS
@pytest.mark.parametrize(("rule", "bad", "words"), EXPLICIT_RULES, ids=[r[0] for r in EXPLICIT_RULES])
def test_an_explicit_point_breaking_a_rule_is_rejected_alone(
    encoding: str, rule: str, bad: dict[str, Any], words: str
) -> None:
    request = sidecar_metrics([bad, GOOD | {"bucket_counts": [0, 3, 0]}], kind="histogram")
    rejected_one_of_two(decode_metrics(request, encoding), words)


@ENCODINGS
def test_bounds_near_the_largest_double_are_finite_and_land_in_the_top_bucket(encoding: str) -> None:
    # 1e308 + 1.5e308 overflows to infinity: the midpoint is taken without the sum.
    request = sidecar_metrics(
        [{"count": 3, "bounds": [1e308, 1.5e308], "bucket_counts": [0, 3, 0]}], kind="histogram"
    )
    batch = decode_metrics(request, encoding)
    assert batch.rejected.count == 0
    assert batch.points[0].latency == {histogram.MAX_INDEX: 3}


@ENCODINGS
def test_a_policy_counter_out_of_range_is_rejected(encoding: str) -> None:
    request = sidecar_metrics(
        [{"as_int": -1}, {"as_int": 2**40}, {"as_double": 2.5}, {"as_int": 4}],
        kind="sum",
        name="meshui.proxy.retries",
    )
    batch = decode_metrics(request, encoding)
    assert batch.rejected.count == 3
    assert "value -1 is out of range" in batch.rejected.message
    assert [c.value for c in batch.counters] == [4]


def json_point(**changes: Any) -> bytes:
    """OTLP/JSON of one good exponential point and one changed by ``changes`` (None deletes)."""
    document = to_json_dict(sidecar_metrics([GOOD, GOOD]))
    point = document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["exponentialHistogram"][
        "dataPoints"
    ][0]
    for key, value in changes.items():
        if value is None:
            point.pop(key, None)
        else:
            point[key] = value
    return orjson.dumps(document)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"positive": {"offset": 1, "bucketCounts": ["-1", "4"]}}, "bucketCounts -1 is out of range"),
        ({"count": "3.0"}, "count must be an integer"),
        ({"count": True}, "count must be an integer, got a boolean"),
        ({"count": [3]}, "count must be an integer, got list"),
        ({"scale": "x"}, "scale must be an integer"),
        ({"scale": 1.5}, "scale must be an integer"),
        ({"sum": "NaN"}, "sum must be finite"),
        ({"sum": {"a": 1}}, "sum must be a number"),
        ({"positive": "all"}, "positive must be an object"),
        ({"attributes": "x"}, "attributes must be an array"),
        ({"attributes": [{"key": "meshui.direction", "value": {"intValue": "1e3"}}]}, "intValue"),
        ({"timeUnixNano": "-5"}, "timeUnixNano -5 is out of range"),
    ],
)
def test_a_json_point_with_a_wrong_type_is_rejected_alone(changes: dict[str, Any], words: str) -> None:
    batch = otlp_metrics.decode_json(json_point(**changes))
    assert batch.rejected.count == 1, batch.rejected
    assert words in batch.rejected.message
    assert len(batch.points) == 1


def test_a_json_metric_whose_name_is_an_object_rejects_its_points_not_the_export() -> None:
    document = to_json_dict(sidecar_metrics([GOOD]))
    metrics = document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    metrics.append({**metrics[0], "name": {"evil": True}})
    batch = otlp_metrics.decode_json(orjson.dumps(document))
    assert batch.rejected.count == 1
    assert "name must be a string, got dict" in batch.rejected.message
    assert len(batch.points) == 1


def test_a_json_temporality_that_is_not_an_enum_rejects_the_metric() -> None:
    document = to_json_dict(sidecar_metrics([GOOD, GOOD]))
    document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["exponentialHistogram"][
        "aggregationTemporality"
    ] = "SOMETIMES"
    batch = otlp_metrics.decode_json(orjson.dumps(document))
    assert batch.rejected.count == 2
    assert "aggregationTemporality must be one of" in batch.rejected.message


# -- spans --------------------------------------------------------------------------------
def json_span(**changes: Any) -> bytes:
    document = to_json_dict(spans("web", [{"trace": 1, "span": 1}, {"trace": 2, "span": 2}]))
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span.update(changes)
    return orjson.dumps(document)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"traceId": "0000 000000000000000000000000000001"}, "traceId must be 32 hex digits"),
        ({"traceId": " 00000000000000000000000000000001"}, "traceId must be 32 hex digits"),
        ({"spanId": "00000000000000001"}, "spanId must be 16 hex digits"),
        ({"spanId": 1}, "spanId must be 16 hex digits"),
        ({"parentSpanId": "zz00000000000001"}, "parentSpanId must be 16 hex digits"),
        ({"status": {"code": "2"}}, "status.code must be one of"),
        ({"status": {"code": 7}}, "status.code must be one of"),
        ({"status": "ERROR"}, "status must be an object"),
        ({"kind": "SPAN_KIND_SIDEWAYS"}, "kind must be one of"),
        ({"kind": 2.5}, "kind must be one of"),
        ({"endTimeUnixNano": "1e9"}, "endTimeUnixNano must be an integer"),
        (
            {"attributes": [{"key": "http.response.status_code", "value": {"stringValue": "²"}}]},
            "http.response.status_code must be an integer",
        ),
        ({"attributes": [{"key": "peer.service", "value": {"stringValue": "a\nb"}}]}, "peer.service holds"),
        ("not an object", "must be an object"),
    ],
)
def test_a_json_span_breaking_a_rule_is_rejected_alone(changes: Any, words: str) -> None:
    if isinstance(changes, str):
        document = orjson.loads(json_span())
        document["resourceSpans"][0]["scopeSpans"][0]["spans"][0] = changes
        body = orjson.dumps(document)
    else:
        body = json_span(**changes)
    batch = otlp_traces.decode_json(body)
    assert batch.span_count == 2
    assert batch.rejected.count == 1, batch.rejected
    assert words in batch.rejected.message
    assert [s.trace_id for g in batch.groups for s in g.spans] == [(2).to_bytes(16, "big")]


@ENCODINGS
@pytest.mark.parametrize(
    ("attributes", "words"),
    [
        ({"http.response.status_code": "five hundred"}, "must be an integer"),
        ({"http.response.status_code": -1}, "out of range 0..999"),
        ({"http.status_code": 2**40}, "out of range 0..999"),
        ({"peer.service": "x" * 300}, "longer than 255"),
        ({"server.address": "evil\x1fhost"}, "control or non-printable"),
    ],
)
def test_a_span_attribute_breaking_a_rule_rejects_the_span(
    encoding: str, attributes: dict[str, Any], words: str
) -> None:
    request = spans(
        "web", [{"trace": 1, "span": 1, "kind": 3, "attributes": attributes}, {"trace": 2, "span": 2}]
    )
    batch = decode_traces(request, encoding)
    assert batch.rejected.count == 1, batch.rejected
    assert words in batch.rejected.message
    assert sum(len(g.spans) for g in batch.groups) == 1


@ENCODINGS
def test_a_decimal_string_status_code_is_still_read(encoding: str) -> None:
    request = spans("web", [{"trace": 1, "span": 1, "attributes": {"http.response.status_code": "503"}}])
    batch = decode_traces(request, encoding)
    assert batch.rejected.count == 0
    assert batch.groups[0].spans[0].http_status == 503


@ENCODINGS
def test_a_resource_whose_service_name_cannot_be_stored_rejects_its_spans(encoding: str) -> None:
    request = spans("bad\x1fname", [{"trace": 1, "span": 1}, {"trace": 2, "span": 2}])
    request.resource_spans.extend(spans("web", [{"trace": 3, "span": 3}]).resource_spans)
    batch = decode_traces(request, encoding)
    assert batch.span_count == 3
    assert batch.rejected.count == 2
    assert "resource service.name holds a control" in batch.rejected.message
    assert [g.service for g in batch.groups] == ["web"]


def test_a_json_resource_with_a_malformed_attribute_rejects_only_its_spans() -> None:
    document = to_json_dict(spans("web", [{"trace": 1, "span": 1}]))
    document["resourceSpans"].append(
        {
            **document["resourceSpans"][0],
            "resource": {"attributes": [{"key": "x", "value": {"intValue": "ab"}}]},
        }
    )
    batch = otlp_traces.decode_json(orjson.dumps(document))
    assert batch.rejected.count == 1
    assert "intValue must be an integer" in batch.rejected.message
    assert [g.service for g in batch.groups] == ["web"]


# -- through the receiver: the status, the partial success and the counters ----------------
async def test_a_poison_point_gets_a_partial_success_naming_it_and_is_counted() -> None:
    pipeline = Pipeline()
    app = OTLPHttpReceiver(pipeline)
    request = sidecar_metrics([GOOD, {"count": 2**63}, GOOD])
    status, _, body = await call(app, "POST", "/v1/metrics", request.SerializeToString())
    assert status == 200
    partial = ExportMetricsServiceResponse.FromString(body).partial_success
    assert partial.rejected_data_points == 1
    assert "count 9223372036854775808 is out of range 0..4294967296" in partial.error_message
    assert (app.stats.received_points, app.stats.rejected_points) == (3, 1)
    assert [p.count for p in pipeline.offered[0].points] == [3, 3]


async def test_a_json_span_with_a_spaced_trace_id_gets_a_partial_success_and_is_counted() -> None:
    pipeline = Pipeline()
    app = OTLPHttpReceiver(pipeline)
    body = json_span(traceId="0000 000000000000000000000000000001")
    status, _, response = await call(app, "POST", "/v1/traces", body, "application/json")
    assert status == 200
    partial = orjson.loads(response)["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "traceId must be 32 hex digits" in partial["errorMessage"]
    assert (app.stats.received_spans, app.stats.rejected_spans) == (2, 1)


async def test_an_export_whose_every_item_is_bad_still_gets_200_with_all_rejected() -> None:
    # 400 is for a request that cannot be read at all; bad items are a partial success.
    app = OTLPHttpReceiver(Pipeline())
    request = spans("web", [{"trace": 0, "span": 1}])
    status, _, body = await call(app, "POST", "/v1/traces", request.SerializeToString())
    assert status == 200
    assert ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans == 1


def test_the_bounds_leave_a_whole_window_of_full_fields_inside_int64() -> None:
    assert validation.FIELD_LIMIT * 3600 <= 2**63 - 1
    assert validation.FIELD_LIMIT < 2**53  # exact in Redis' Lua doubles
    # Half a million points of the largest count fit in one per-second field.
    assert validation.MAX_POINT_COUNT * 500_000 < validation.FIELD_LIMIT
