"""OTLP/HTTP export over real loopback sockets to a tiny collector stand-in."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httptools
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from proxies.telemetry import Resource, SpanData, Telemetry
from proxies.telemetry.pipeline import DROP_REASONS
from tests.polling import eventually
from tests.ports import free_port

RESOURCE = Resource(service="frontend", version="v1", instance_id="frontend-1")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Sink:
    """An HTTP/1.1 server on loopback answering scripted statuses (200 when unscripted)."""

    received: list[Received] = field(default_factory=list)
    script: dict[str, deque[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    connections: int = 0
    url: str = ""

    def answer(self, path: str, status: int, headers: dict[str, str] | None = None) -> None:
        self.script.setdefault(path, deque()).append((status, headers or {}))

    def bodies(self, path: str) -> list[bytes]:
        return [item.body for item in self.received if item.path == path]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        sink = self

        class Request:
            def __init__(self) -> None:
                self.url = b""
                self.headers: dict[str, str] = {}
                self.body = b""
                self.done = False

            def on_url(self, url: bytes) -> None:
                self.url += url

            def on_header(self, name: bytes, value: bytes) -> None:
                self.headers[name.decode().lower()] = value.decode()

            def on_body(self, body: bytes) -> None:
                self.body += body

            def on_message_complete(self) -> None:
                self.done = True

        try:
            while True:
                request = Request()
                parser = httptools.HttpRequestParser(request)
                while not request.done:
                    data = await reader.read(65536)
                    if not data:
                        return
                    parser.feed_data(data)
                path = request.url.decode()
                sink.received.append(Received(path, request.headers, request.body, time.monotonic()))
                status, headers = (
                    (sink.script.get(path) or deque([(200, {})])).popleft()
                    if sink.script.get(path)
                    else (200, {})
                )
                extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n{extra}\r\n".encode())
                await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    stand_in = Sink()
    server = await asyncio.start_server(stand_in.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stand_in.url = f"http://127.0.0.1:{port}"
    async with server:
        yield stand_in
        server.close()


def counter(telemetry: Telemetry, line_start: str) -> float:
    for line in telemetry.prometheus().splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no line {line_start}")


def dropped(telemetry: Telemetry, signal: str, reason: str) -> float:
    return counter(telemetry, f'meshui_telemetry_dropped_total{{signal="{signal}",reason="{reason}"}}')


def exported(telemetry: Telemetry, signal: str) -> float:
    return counter(telemetry, f'meshui_telemetry_exported_total{{signal="{signal}"}}')


def measurements(body: bytes) -> int:
    request = ExportMetricsServiceRequest.FromString(body)
    return sum(
        point.count
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        for point in metric.exponential_histogram.data_points
    )


def span(index: int) -> SpanData:
    return SpanData(
        trace_id=index.to_bytes(16, "big"),
        span_id=(index + 1).to_bytes(8, "big"),
        parent_span_id=None,
        name="GET cart",
        kind="client",
        start_ns=1,
        end_ns=2,
        attributes={"url.path": "/cart"},
        error=False,
    )


async def test_metrics_and_spans_reach_the_collector_over_one_kept_alive_connection(
    sink: Sink,
) -> None:
    telemetry = Telemetry(RESOURCE, sink.url, 0.01, export_interval=0.05)
    await telemetry.start()
    for _ in range(10):
        telemetry.record_request("outbound", "frontend", "cart", "v1", 200, False, 0.004)
    for index in range(300):  # more than two batches of 128
        telemetry.record_span(span(index))

    await eventually(lambda: exported(telemetry, "metrics") == 10)
    await eventually(lambda: exported(telemetry, "spans") == 300)
    telemetry.record_request("outbound", "frontend", "cart", "v1", 200, False, 0.004)
    await eventually(lambda: exported(telemetry, "metrics") == 11)
    await telemetry.stop()

    assert sum(measurements(body) for body in sink.bodies("/v1/metrics")) == 11
    traces = [ExportTraceServiceRequest.FromString(body) for body in sink.bodies("/v1/traces")]
    sizes = [len(request.resource_spans[0].scope_spans[0].spans) for request in traces]
    assert sum(sizes) == 300 and max(sizes) <= 128
    assert {item.headers["content-type"] for item in sink.received} == {"application/x-protobuf"}
    assert sink.connections == 1


async def test_a_503_with_retry_after_is_retried_after_the_delay_and_nothing_is_lost(
    sink: Sink,
) -> None:
    sink.answer("/v1/metrics", 503, {"Retry-After": "1"})
    telemetry = Telemetry(RESOURCE, sink.url, 0.01, export_interval=0.05)
    await telemetry.start()
    for _ in range(7):
        telemetry.record_request("inbound", "unknown", "frontend", "v1", 200, True, 0.01)

    await eventually(lambda: len(sink.bodies("/v1/metrics")) >= 1)
    for _ in range(5):  # recorded while the collector asks us to wait
        telemetry.record_request("inbound", "unknown", "frontend", "v1", 200, True, 0.01)
    await eventually(lambda: exported(telemetry, "metrics") == 12)
    await telemetry.stop()

    attempts = [item for item in sink.received if item.path == "/v1/metrics"]
    assert attempts[1].body == attempts[0].body  # the same request, retried
    assert attempts[1].at - attempts[0].at >= 0.95
    assert sum(measurements(item.body) for item in attempts[1:]) == 12
    assert counter(telemetry, 'meshui_telemetry_export_errors_total{signal="metrics"}') == 1
    assert counter(telemetry, 'meshui_telemetry_export_errors_total{signal="spans"}') == 0
    assert all(dropped(telemetry, "metrics", reason) == 0 for reason in DROP_REASONS["metrics"])


async def test_a_400_is_dropped_without_retry_and_counted_as_rejected(sink: Sink) -> None:
    sink.answer("/v1/metrics", 400)
    sink.answer("/v1/traces", 400)
    telemetry = Telemetry(RESOURCE, sink.url, 0.01, export_interval=0.05)
    await telemetry.start()
    for _ in range(3):
        telemetry.record_request("outbound", "frontend", "cart", "v1", 500, False, 0.01)
    telemetry.record_span(span(1))

    await eventually(lambda: dropped(telemetry, "metrics", "rejected") == 3)
    await eventually(lambda: dropped(telemetry, "spans", "rejected") == 1)
    telemetry.record_request("outbound", "frontend", "cart", "v1", 200, False, 0.01)
    await eventually(lambda: exported(telemetry, "metrics") == 1)
    await telemetry.stop()

    first, second = sink.bodies("/v1/metrics")[:2]
    assert measurements(first) == 3 and measurements(second) == 1  # not sent twice


async def test_with_the_collector_down_the_backlog_stays_bounded_and_drops_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens on it: connection refused
    telemetry = Telemetry(
        RESOURCE,
        f"http://127.0.0.1:{port}",
        0.01,
        export_interval=0.02,
        max_metric_intervals=3,
        span_queue_size=10,
    )
    caplog.set_level(logging.INFO, logger="proxies.telemetry")
    await telemetry.start()
    recorded = 0

    def record_until_the_backlog_drops() -> bool:
        nonlocal recorded
        if dropped(telemetry, "metrics", "backlog_full") >= 5:
            return True
        telemetry.record_request("outbound", "frontend", "cart", "v1", 200, False, 0.01)
        recorded += 1
        return False

    await eventually(record_until_the_backlog_drops, timeout=5.0)
    for index in range(20):
        telemetry.record_span(span(index))

    assert len(telemetry._metrics.backlog) <= 3
    assert dropped(telemetry, "spans", "queue_full") >= 10
    assert counter(telemetry, "meshui_telemetry_queue_spans") <= 10 + 128
    await telemetry.stop()
    assert (
        dropped(telemetry, "metrics", "backlog_full") + dropped(telemetry, "metrics", "shutdown") == recorded
    )
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # one line per state change, not one per attempt


async def test_stop_flushes_what_is_pending(sink: Sink) -> None:
    telemetry = Telemetry(RESOURCE, sink.url, 0.01, export_interval=60.0)
    await telemetry.start()
    telemetry.record_request("outbound", "frontend", "cart", "v1", 200, False, 0.01)
    telemetry.record_span(span(1))

    await telemetry.stop()

    assert sum(measurements(body) for body in sink.bodies("/v1/metrics")) == 1
    assert len(sink.bodies("/v1/traces")) == 1
    assert exported(telemetry, "spans") == 1


async def test_without_an_endpoint_requests_still_show_on_the_admin_port() -> None:
    telemetry = Telemetry(RESOURCE, None, 0.01, export_interval=0.02)
    await telemetry.start()
    telemetry.record_request("inbound", 'we"ird\nname', "frontend", "v1", 200, False, 0.01)
    await asyncio.sleep(0)
    telemetry.record_span(span(1))
    await eventually(lambda: not telemetry._aggregator.interval.unique)  # swapped out
    telemetry.record_request("inbound", 'we"ird\nname', "frontend", "v1", 200, False, 0.01)
    await telemetry.stop()

    text = telemetry.prometheus()
    assert (
        'meshui_proxy_requests_total{direction="inbound",source="we\\"ird\\nname",'
        'destination="frontend",destination_version="v1",code="200",source_sidecar="false"} 2'
    ) in text
    assert dropped(telemetry, "spans", "no_endpoint") == 1
    assert dropped(telemetry, "metrics", "shutdown") == 0


async def test_request_and_drop_totals_agree_with_the_admin_lines_across_intervals() -> None:
    telemetry = Telemetry(RESOURCE, None, 0.01, export_interval=0.02, max_attribute_sets=1)
    await telemetry.start()
    telemetry.record_request("inbound", "cart", "frontend", "v1", 200, True, 0.01)
    await eventually(lambda: not telemetry._aggregator.interval.unique)  # swapped out
    telemetry.record_request("inbound", "cart", "frontend", "v1", 200, True, 0.01)
    telemetry.record_request("inbound", "cart", "frontend", "v1", 500, True, 0.01)  # over the limit
    telemetry.record_request("inbound", "cart", "frontend", "v1", 200, True, -1.0)  # invalid
    telemetry.record_span(span(1))

    assert telemetry.requests_total == 4
    text = telemetry.prometheus()
    assert telemetry.dropped_total == sum(
        int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("meshui_telemetry_dropped_total")
    )
    assert telemetry.dropped_total == 3  # cardinality_limit, invalid, spans no_endpoint
    await telemetry.stop()
    assert telemetry.requests_total == 4


def test_a_full_span_queue_drops_new_spans_and_counts_them() -> None:
    telemetry = Telemetry(RESOURCE, "http://127.0.0.1:9", 0.01, span_queue_size=4)
    for index in range(6):
        telemetry.record_span(span(index))

    assert counter(telemetry, "meshui_telemetry_queue_spans") == 4
    assert dropped(telemetry, "spans", "queue_full") == 2


def test_a_bad_sample_rate_fails_loudly() -> None:
    with pytest.raises(ValueError, match="trace_sample"):
        Telemetry(RESOURCE, None, 1.5)
