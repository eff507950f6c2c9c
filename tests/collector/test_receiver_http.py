"""The OTLP/HTTP receiver over real HTTP: status codes and bodies as the OTLP spec says."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.receiver import ReceiverConfig
from tests.collector.support import ahttp, running_collector
from tests.polling import eventually

GOLDEN = Path(__file__).parent / "golden"
PB = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


async def test_good_protobuf_gets_200_with_partial_success_for_the_bad_span(redis_url: str) -> None:
    async with running_collector(redis_url) as collector:
        url = f"http://127.0.0.1:{collector.port}/v1/traces"
        status, headers, body = await ahttp("POST", url, (GOLDEN / "traces.pb").read_bytes(), PB)
        assert status == 200
        assert headers["content-type"] == "application/x-protobuf"
        response = ExportTraceServiceResponse.FromString(body)
        assert response.partial_success.rejected_spans == 1
        assert "trace_id" in response.partial_success.error_message
        assert collector.stats.received_spans == 10


async def test_json_gets_a_json_response_and_hex_ids_pair_up(redis_url: str) -> None:
    async with running_collector(redis_url) as collector:
        url = f"http://127.0.0.1:{collector.port}/v1/traces"
        status, _, body = await ahttp("POST", url, (GOLDEN / "traces.json").read_bytes(), JSON)
        assert status == 200
        assert orjson.loads(body)["partialSuccess"]["rejectedSpans"] == "1"
        # The hex ids were read as hex: the client and server spans found each other.
        await eventually(lambda: collector.stats.pairs == 2)


async def test_json_with_base64_ids_rejects_those_spans(redis_url: str) -> None:
    document = orjson.loads((GOLDEN / "traces.json").read_bytes())
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "AAAAAAAAAAAAAAAAAAAAAQ=="
    async with running_collector(redis_url) as collector:
        url = f"http://127.0.0.1:{collector.port}/v1/traces"
        status, _, body = await ahttp("POST", url, orjson.dumps(document), JSON)
        assert status == 200
        assert orjson.loads(body)["partialSuccess"]["rejectedSpans"] == "2"


async def test_undecodable_protobuf_and_bad_json_get_400_with_a_status_message(redis_url: str) -> None:
    async with running_collector(redis_url) as collector:
        base = f"http://127.0.0.1:{collector.port}"
        status, _, body = await ahttp("POST", f"{base}/v1/traces", b"\xff\xff\xff garbage", PB)
        assert status == 400
        assert "protobuf" in Status.FromString(body).message
        status, _, body = await ahttp("POST", f"{base}/v1/metrics", b"{not json", JSON)
        assert status == 400
        assert "not valid JSON" in orjson.loads(body)["message"]
        status, _, body = await ahttp("POST", f"{base}/v1/traces",
                                      b'{"resourceSpans": {"oops": 1}}', JSON)
        assert status == 400
        assert "resourceSpans must be an array" in orjson.loads(body)["message"]
        # The server is still fine.
        status, _, _ = await ahttp("POST", f"{base}/v1/traces", b"{}", JSON)
        assert status == 200


async def test_wrong_content_type_path_and_method_are_refused(redis_url: str) -> None:
    async with running_collector(redis_url) as collector:
        base = f"http://127.0.0.1:{collector.port}"
        assert (await ahttp("POST", f"{base}/v1/traces", b"x", {"Content-Type": "text/plain"}))[0] == 415
        assert (await ahttp("POST", f"{base}/v1/traces", b"x",
                            {**PB, "Content-Encoding": "br"}))[0] == 415
        assert (await ahttp("POST", f"{base}/v1/logs", b"", PB))[0] == 404
        status, headers, _ = await ahttp("GET", f"{base}/v1/traces")
        assert (status, headers["allow"]) == (405, "POST")


async def test_gzip_bodies_are_accepted(redis_url: str) -> None:
    async with running_collector(redis_url) as collector:
        url = f"http://127.0.0.1:{collector.port}/v1/traces"
        body = gzip.compress((GOLDEN / "traces.pb").read_bytes())
        status, _, _ = await ahttp("POST", url, body, {**PB, "Content-Encoding": "gzip"})
        assert status == 200
        assert collector.stats.received_spans == 10
        status, _, _ = await ahttp("POST", url, b"not gzip", {**PB, "Content-Encoding": "gzip"})
        assert status == 400


async def test_oversize_bodies_and_gzip_bombs_get_413(redis_url: str) -> None:
    limited = ReceiverConfig(port=0, max_body_bytes=64 * 1024)
    async with running_collector(redis_url, receiver=limited) as collector:
        url = f"http://127.0.0.1:{collector.port}/v1/traces"
        status, _, _ = await ahttp("POST", url, b"\0" * (65 * 1024), PB)
        assert status == 413
        bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # 50 MiB in ~50 KiB
        assert len(bomb) < 64 * 1024
        status, _, body = await ahttp("POST", url, bomb, {**PB, "Content-Encoding": "gzip"})
        assert status == 413
        assert "decompressed" in Status.FromString(body).message


async def test_health_and_metrics_show_the_counters(redis_url: str) -> None:
    async with running_collector(redis_url) as collector:
        base = f"http://127.0.0.1:{collector.port}"
        await ahttp("POST", f"{base}/v1/traces", (GOLDEN / "traces.pb").read_bytes(), PB)
        await ahttp("POST", f"{base}/v1/metrics", (GOLDEN / "sidecar_metrics.pb").read_bytes(), PB)
        status, _, body = await ahttp("GET", f"{base}/health")
        health = orjson.loads(body)
        assert status == 200 and health["status"] == "ok"
        assert (health["received_spans"], health["received_points"]) == (10, 9)
        status, headers, body = await ahttp("GET", f"{base}/metrics")
        text = body.decode()
        assert headers["content-type"].startswith("text/plain")
        assert 'meshui_collector_received_total{signal="traces"} 10' in text
        assert 'meshui_collector_rejected_total{signal="metrics"} 1' in text
        assert "meshui_collector_redis_write_errors_total 0" in text


def test_a_metrics_partial_success_names_rejected_data_points_in_both_encodings() -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceResponse,
    )

    from collector.otlp_metrics import encode_response
    from collector.records import Rejections

    rejected = Rejections()
    rejected.add("meshui.proxy.request.duration must be a histogram, got gauge", 3)

    as_json = orjson.loads(encode_response(rejected, json=True))
    as_pb = ExportMetricsServiceResponse.FromString(encode_response(rejected, json=False))

    assert as_json == {"partialSuccess": {"rejectedDataPoints": "3", "errorMessage": rejected.message}}
    assert as_pb.partial_success.rejected_data_points == 3
    assert encode_response(Rejections(), json=True) == b"{}"
