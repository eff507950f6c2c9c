"""OTLP/gRPC into a real collector and a real Redis: SDK apps, bad data, overload, shutdown."""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import grpc.aio
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.receiver_grpc import METRICS_SERVICE, TRACE_SERVICE, GrpcReceiverConfig
from tests.collector.support import redis_through_a_link, running_collector
from tests.collector.test_sdk_end_to_end import N, emit, sdk_edge
from tests.polling import eventually, wait_until

GOLDEN_TRACES = (Path(__file__).parent / "golden" / "traces.pb").read_bytes()  # 10 spans, 1 invalid
ROOT = Path(__file__).resolve().parents[2]


async def export(port: int, service: str, body: bytes, compression: grpc.Compression | None = None) -> bytes:
    """One raw Export call (bytes in, bytes out), as any OTLP/gRPC client makes it."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(f"/{service}/Export")
        response: bytes = await call(body, compression=compression, timeout=10)
        return response


async def refused(port: int, service: str, body: bytes, **kwargs: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await export(port, service, body, **kwargs)  # type: ignore[arg-type]
    return error.value


async def test_an_sdk_app_exporting_over_grpc_shows_as_one_edge_with_exactly_n_requests(
    redis_url: str,
) -> None:
    async with running_collector(redis_url) as collector:
        endpoint = f"127.0.0.1:{collector.grpc_port}"
        await asyncio.to_thread(
            emit,
            lambda: OTLPSpanExporter(endpoint=endpoint, insecure=True, compression=grpc.Compression.Gzip),
        )
        edge = await eventually(lambda: [e for e in sdk_edge(redis_url) if e["requests"] == N], timeout=10)
        assert edge[0]["errors"] == 0
        assert collector.stats.pairs == N
        assert collector.stats.received_spans == 2 * N
        assert collector.stats.grpc_requests["OK"] >= 2  # one export per provider at least
        assert set(collector.stats.grpc_requests) == {"OK"}
        assert collector.stats.requests == {}  # nothing went through OTLP/HTTP


def emit_metrics(endpoint: str) -> None:
    """A plain app's counter (3 series) and a "sidecar" whose request metric is not a histogram."""
    for attributes, name, series in (
        ({"service.name": "shop-web"}, "shop.orders", ("card", "cash", "voucher")),
        ({"service.name": "shop-api", "meshui.sidecar": True}, "meshui.proxy.request.duration", ("a", "b")),
    ):
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=endpoint, insecure=True), export_interval_millis=3_600_000
        )
        provider = MeterProvider(resource=Resource.create(attributes), metric_readers=[reader])
        counter = provider.get_meter("shop").create_counter(name)
        for value in series:
            counter.add(1, {"kind": value})
        provider.shutdown()  # collects and exports once (a flush first would export the series twice)


async def test_sdk_metrics_over_grpc_are_counted_and_a_bad_sidecar_metric_is_a_partial_success(
    redis_url: str,
) -> None:
    async with running_collector(redis_url) as collector:
        await asyncio.to_thread(emit_metrics, f"127.0.0.1:{collector.grpc_port}")
        assert collector.stats.received_points == 5
        assert collector.stats.rejected_points == 2  # "must be a histogram": partial success
        assert collector.stats.grpc_requests["OK"] >= 2


async def test_partial_success_names_the_rejected_spans_in_the_response(redis_url: str) -> None:
    async with running_collector(redis_url) as collector:
        assert collector.grpc_port is not None
        response = ExportTraceServiceResponse.FromString(
            await export(collector.grpc_port, TRACE_SERVICE, GOLDEN_TRACES)
        )
        assert response.partial_success.rejected_spans == 1
        assert "trace_id" in response.partial_success.error_message
        assert (collector.stats.received_spans, collector.stats.rejected_spans) == (10, 1)
        # A full success leaves partial_success unset (the spec's MUST), for metrics too.
        empty = await export(collector.grpc_port, METRICS_SERVICE, b"")
        assert not ExportMetricsServiceResponse.FromString(empty).HasField("partial_success")


async def test_bad_bytes_get_invalid_argument_and_nothing_is_taken(redis_url: str) -> None:
    async with running_collector(redis_url) as collector:
        assert collector.grpc_port is not None
        for service in (TRACE_SERVICE, METRICS_SERVICE):
            error = await refused(collector.grpc_port, service, b"\x0a\x05ab")  # a truncated field
            assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid protobuf" in (error.details() or "")
        assert collector.stats.grpc_requests == {"INVALID_ARGUMENT": 2}
        assert (collector.stats.received_spans, collector.stats.received_points) == (0, 0)
        # An unknown method is gRPC's own UNIMPLEMENTED.
        error = await refused(collector.grpc_port, "opentelemetry.proto.collector.logs.v1.LogsService", b"")
        assert error.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_a_message_over_the_limit_plain_or_as_a_gzip_bomb_gets_resource_exhausted_and_is_counted(
    redis_url: str,
) -> None:
    limited = GrpcReceiverConfig(port=0, max_message_bytes=64 * 1024)
    async with running_collector(redis_url, grpc_receiver=limited) as collector:
        port = collector.grpc_port
        assert port is not None
        bomb = bytes(1024 * 1024)
        assert len(gzip.compress(bomb)) < limited.max_message_bytes
        for compression in (None, grpc.Compression.Gzip):
            error = await refused(port, TRACE_SERVICE, bomb, compression=compression)
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        await eventually(lambda: collector.stats.grpc_requests == {"RESOURCE_EXHAUSTED": 2})
        # gzip within the limit is accepted.
        await export(port, TRACE_SERVICE, GOLDEN_TRACES, compression=grpc.Compression.Gzip)
        assert collector.stats.received_spans == 10


async def test_redis_down_gets_unavailable_with_retry_info_and_the_sdk_retries_until_it_is_back(
    redis_url: str,
) -> None:
    async with (
        redis_through_a_link(redis_url) as (link, via_link),
        # Publisher on: its lock round is what notices that Redis is back while idle.
        running_collector(via_link) as collector,
    ):
        port = collector.grpc_port
        assert port is not None
        link.cut()
        await eventually(lambda: not collector.stats.redis_available, timeout=30)

        error = await refused(port, TRACE_SERVICE, GOLDEN_TRACES)
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        trailers = dict(error.trailing_metadata() or ())
        status = Status.FromString(trailers["grpc-status-details-bin"])
        info = RetryInfo()
        assert status.code == grpc.StatusCode.UNAVAILABLE.value[0] and status.details[0].Unpack(info)
        assert info.retry_delay.seconds == 1
        assert RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]) == info
        assert collector.stats.refused == {"redis_unavailable": 1}
        assert collector.stats.refused_items[("traces", "redis_unavailable")] == 10
        assert collector.stats.received_spans == 0  # counted once, when accepted

        # A real SDK exporter treats it as retryable: it waits RetryInfo's delay and tries again.
        spans = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "shop-web"}))
        provider.add_span_processor(SimpleSpanProcessor(spans))
        with provider.get_tracer("t").start_as_current_span("GET /", kind=trace.SpanKind.SERVER):
            pass
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=30)
        result = asyncio.ensure_future(asyncio.to_thread(exporter.export, spans.get_finished_spans()))
        await eventually(lambda: collector.stats.refused["redis_unavailable"] >= 2, timeout=30)
        link.restore()
        assert await asyncio.wait_for(result, 40) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert collector.stats.received_spans == 1
        assert collector.stats.grpc_requests["UNAVAILABLE"] >= 2 and collector.stats.grpc_requests["OK"] == 1


async def test_the_grpc_receiver_can_be_off(redis_url: str) -> None:
    async with running_collector(redis_url, grpc_receiver=GrpcReceiverConfig(enabled=False)) as collector:
        assert collector.grpc_port is None


@contextmanager
def collector_process(redis_url: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """``python -m collector`` (uvloop, signal handlers and all) on free ports; its log lines."""
    process = subprocess.Popen(
        [sys.executable, "-m", "collector", "--http-port", "0", "--grpc-port", "0", "--redis-url", redis_url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert process.stderr is not None
    # Read all along, so a chatty log can never fill the pipe and stall the collector.
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        reader.join(timeout=10)


def test_the_collector_process_serves_grpc_and_stops_cleanly_on_sigterm(redis_url: str) -> None:
    with collector_process(redis_url) as (process, lines):
        def grpc_port() -> int:
            assert process.poll() is None, "".join(lines)
            found = [line for line in list(lines) if "OTLP/gRPC listening on 127.0.0.1:" in line]
            return int(found[0].rsplit(":", 1)[1]) if found else 0

        port = wait_until(grpc_port, timeout=30, what="the collector to listen for OTLP/gRPC")
        emit(lambda: OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True))

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    log = "".join(lines)
    assert "Traceback" not in log and "ERROR" not in log, log
    # Shutdown drained the queue and flushed the graph: every pair is in Redis.
    assert sdk_edge(redis_url)[0]["requests"] == N


async def test_two_messages_on_the_unary_export_get_invalid_argument(redis_url: str) -> None:
    async with running_collector(redis_url) as collector:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            call = channel.stream_unary(f"/{TRACE_SERVICE}/Export")
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await call(iter([GOLDEN_TRACES, GOLDEN_TRACES]), timeout=10)
        assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert collector.stats.grpc_requests == {"INVALID_ARGUMENT": 1}
        assert collector.stats.received_spans == 0
