"""Tail keep through real sidecars on loopback: kept spans reach an OTLP stand-in over the wire.

Head sampling is 0 everywhere, so every span that arrives was kept by tail keep: a failed
or slow request, a trace a called sidecar said to keep (``x-meshui-keep``), or a trace the
control plane asked for (``export_traces``). The telemetry's export interval is long (30 s):
kept spans go out within ``SPAN_FLUSH_DELAY_S``, not at the next interval.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from websockets.asyncio.server import serve

from proxies.config import SidecarConfig
from proxies.sidecar import Sidecar
from proxies.telemetry import Resource, Telemetry, tracecontext
from proxies.telemetry.tailkeep import TailKeepConfig
from tests.polling import eventually
from tests.ports import free_port
from tests.proxies.conftest import read_response
from tests.proxies.test_admin import get
from tests.proxies.test_telemetry_export import Sink

TOKEN = "tail-token"


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    stand_in = Sink()
    server = await asyncio.start_server(stand_in.handle, "127.0.0.1", 0)
    stand_in.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield stand_in
        server.close()


def spans(sink: Sink) -> list[dict[str, Any]]:
    """Every span the stand-in received: its service, ids, kind, status and attributes."""
    found = []
    for body in sink.bodies("/v1/traces"):
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            service = next(a.value.string_value for a in resource_spans.resource.attributes
                           if a.key == "service.name")
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: getattr(a.value, a.value.WhichOneof("value"))
                                  for a in span.attributes}
                    found.append({"service": service, "trace_id": span.trace_id.hex(),
                                  "kind": span.kind, "error": span.status.code == 2, **attributes})
    return found


class Sidecars:
    """Real sidecars on ephemeral loopback ports, each with real telemetry to the sink."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.running: list[Sidecar] = []

    async def start(self, service: str, app_port: int, services: dict[str, Any] | None = None,
                    control: str | None = None, **tail: Any) -> Sidecar:
        proxy_id = f"{service}-v1-{len(self.running)}"
        config = SidecarConfig(
            service=service, version="v1", app=("127.0.0.1", app_port), inbound=("127.0.0.1", 0),
            outbound=("127.0.0.1", 0), admin=("127.0.0.1", 0), control=control,
            token=TOKEN if control else None, endpoints_file=None, otlp=self.sink.url,
            trace_sample=0.0, proxy_id=proxy_id, advertise=None, log_level="INFO",
            tail=TailKeepConfig(**tail),
        )  # fmt: skip
        telemetry = Telemetry(Resource(service, "v1", proxy_id), self.sink.url, 0.0, export_interval=30.0)
        sidecar = Sidecar(config, telemetry, tracecontext.incoming)
        await sidecar.start()
        self.running.append(sidecar)
        sidecar.registry.apply(1, services or {"none": []})
        return sidecar

    async def stop(self) -> None:
        for sidecar in self.running:
            await sidecar.stop()


@pytest.fixture
async def sidecars(sink: Sink) -> AsyncIterator[Sidecars]:
    running = Sidecars(sink)
    yield running
    await running.stop()


def app(status_by_path: dict[bytes, int], delay_s: float = 0.0,
        extra: bytes = b"") -> Any:
    """A local app: the status its path says (200 otherwise), after ``delay_s``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                if delay_s:
                    await asyncio.sleep(delay_s)
                status = status_by_path.get(path, 200)
                writer.write(b"HTTP/1.1 %d X\r\ncontent-length: 2\r\n%b\r\nok" % (status, extra))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return handle


def traceparent() -> tuple[str, bytes]:
    """An unsampled traceparent of a new trace, and the trace id's hex."""
    trace_id = secrets.token_hex(16)
    return trace_id, f"traceparent: 00-{trace_id}-{secrets.token_hex(8)}-00\r\n".encode()


async def request(port: int, line: bytes, headers: bytes = b"") -> tuple[bytes, dict[bytes, bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(line + b"\r\n" + headers + b"host: catalog\r\n\r\n")
        status, fields, _ = await read_response(reader)
        return status, fields
    finally:
        writer.close()


def endpoint(port: int, instance: str = "c1") -> list[dict[str, str]]:
    return [{"instance": instance, "version": "v1", "address": f"127.0.0.1:{port}"}]


async def test_an_unsampled_failed_request_s_span_is_exported_at_once_with_meshui_keep(
    servers: Any, sidecars: Sidecars, sink: Sink,
) -> None:
    upstream = await servers.start(app({b"/fail": 500}))
    sidecar = await sidecars.start("frontend", 1, {"catalog": endpoint(upstream)})
    ok_trace, ok_header = traceparent()
    failed_trace, failed_header = traceparent()

    await request(sidecar.ports["outbound"], b"GET http://catalog/ok HTTP/1.1", ok_header)
    status, _ = await request(sidecar.ports["outbound"], b"GET http://catalog/fail HTTP/1.1", failed_header)
    assert status.startswith(b"HTTP/1.1 500")

    (span,) = await eventually(lambda: spans(sink), timeout=10, what="the failed request's span")
    assert span["trace_id"] == failed_trace != ok_trace
    assert span["meshui.keep"] is True and span["meshui.keep.reason"] == "failed"
    assert span["error"] and span["http.response.status_code"] == 500 and span["url.path"] == "/fail"
    assert span["service"] == "frontend" and span["destination.service"] == "catalog"
    assert sidecar.tail is not None and sidecar.tail.ring.holds(bytes.fromhex(ok_trace))
    # The admin port says so, each tail-keep family once (one HELP, one TYPE).
    _, body = await get(sidecar.ports["admin"], "/metrics")
    text = body.decode()
    assert 'meshui_tail_traces_kept_total{reason="failed"} 1\n' in text
    assert "meshui_tail_ring_records 1\n" in text and "meshui_tail_spans_exported_total 1\n" in text
    families = re.findall(r"^# TYPE (meshui_tail_\w+) ", text, re.M)
    assert len(families) == len(set(families)) == 8
    assert len(re.findall(r"^# HELP meshui_tail_", text, re.M)) == 8
    _, config = await get(sidecar.ports["admin"], "/config")
    assert json.loads(config)["tail_keep"] == {"enabled": True, "ring": 4096, "ring_age_s": 5.0,
                                               "slow_ms": 100.0, "keep_rate": 50.0, "header": True}


async def test_an_unsampled_slow_request_s_span_is_exported_with_meshui_keep(
    servers: Any, sidecars: Sidecars, sink: Sink,
) -> None:
    upstream = await servers.start(app({}, delay_s=0.12))
    sidecar = await sidecars.start("frontend", 1, {"catalog": endpoint(upstream)}, slow_ms=60)
    trace_id, header = traceparent()

    await request(sidecar.ports["outbound"], b"GET http://catalog/slow HTTP/1.1", header)

    (span,) = await eventually(lambda: spans(sink), timeout=10, what="the slow request's span")
    assert span["trace_id"] == trace_id and span["meshui.keep.reason"] == "slow"
    assert not span["error"] and span["http.response.status_code"] == 200


async def test_a_called_sidecar_asks_its_caller_to_keep_the_trace_and_the_app_never_sees_it(
    servers: Any, sidecars: Sidecars, sink: Sink,
) -> None:
    """catalog's sidecar finds its request slow (60 ms floor); frontend's would not (10 s):
    frontend keeps its client span because catalog's response said so."""
    catalog_app = await servers.start(app({}, delay_s=0.1))
    catalog = await sidecars.start("catalog", catalog_app, slow_ms=60)
    frontend = await sidecars.start("frontend", 1, {"catalog": endpoint(catalog.ports["inbound"])},
                                    slow_ms=10_000)
    trace_id, header = traceparent()

    status, fields = await request(frontend.ports["outbound"], b"GET http://catalog/items HTTP/1.1", header)

    assert status.startswith(b"HTTP/1.1 200") and b"x-meshui-keep" not in fields
    found = await eventually(lambda: len(spans(sink)) == 2 and spans(sink), timeout=10,
                             what="both sidecars' spans")
    by_service = {span["service"]: span for span in found}
    assert {span["trace_id"] for span in found} == {trace_id}
    assert by_service["catalog"]["meshui.keep.reason"] == "slow"
    assert by_service["frontend"]["meshui.keep.reason"] == "wanted"  # marked by the header
    assert frontend.tail is not None and frontend.tail.marked["header"] == 1


async def test_an_x_meshui_keep_from_the_local_app_is_dropped_and_believed_by_nobody(
    servers: Any, sidecars: Sidecars, sink: Sink,
) -> None:
    catalog_app = await servers.start(app({}, extra=b"x-meshui-keep: 1\r\n"))
    catalog = await sidecars.start("catalog", catalog_app)
    trace_id, header = traceparent()

    status, fields = await request(catalog.ports["inbound"], b"GET /items HTTP/1.1",
                                   header + b"x-meshui-source: frontend\r\n")

    assert status.startswith(b"HTTP/1.1 200") and b"x-meshui-keep" not in fields
    assert catalog.tail is not None and sum(catalog.tail.marked.values()) == 0
    assert catalog.tail.ring.holds(bytes.fromhex(trace_id)) and spans(sink) == []


class ControlPlane:
    """A stand-in for meshui's control endpoint: welcomes, records frames, sends ours."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.sockets: list[Any] = []
        self.url = ""

    async def handler(self, ws: Any) -> None:
        self.sockets.append(ws)
        async for frame in ws:
            message = json.loads(frame)
            self.received.append(message)
            if message["type"] == "hello":
                await ws.send(json.dumps({"type": "welcome", "proxy_id": message["proxy_id"],
                                          "heartbeat_interval": 30}))

    async def send(self, message: dict[str, Any]) -> None:
        await self.sockets[-1].send(json.dumps(message))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["type"] == kind]


@pytest.fixture
async def control() -> AsyncIterator[ControlPlane]:
    plane = ControlPlane()

    def check_token(connection: Any, request: Any) -> Any:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return connection.respond(HTTPStatus.FORBIDDEN, "bad token\n")
        return None

    port = free_port()
    plane.url = f"ws://127.0.0.1:{port}/api/v1/control"
    async with serve(plane.handler, "127.0.0.1", port, process_request=check_token):
        yield plane


async def test_an_export_traces_frame_exports_the_spans_a_sidecar_still_holds(
    servers: Any, sidecars: Sidecars, sink: Sink, control: ControlPlane,
) -> None:
    inventory_app = await servers.start(app({}))
    inventory = await sidecars.start("inventory", inventory_app, control=control.url)
    await eventually(lambda: control.of_type("hello"), timeout=10, what="the sidecar's hello")
    assert control.of_type("hello")[0]["tail_keep"] is True
    wanted_trace, wanted_header = traceparent()
    other_trace, other_header = traceparent()
    for header in (wanted_header, other_header):
        status, _ = await request(inventory.ports["inbound"], b"GET /stock HTTP/1.1", header)
        assert status.startswith(b"HTTP/1.1 200")
    assert spans(sink) == []  # fast and unsampled: held, not shipped

    await control.send({"type": "export_traces", "id": 1, "trace_ids": [wanted_trace, "ab" * 16]})

    (span,) = await eventually(lambda: spans(sink), timeout=10, what="the held span, exported")
    assert span["trace_id"] == wanted_trace and span["service"] == "inventory"
    assert span["meshui.keep"] is True and span["meshui.keep.reason"] == "remote"
    assert span["url.path"] == "/stock" and span["kind"] == 2  # SERVER
    assert control.of_type("nack") == []  # a good frame is not answered
    # A later span of a trace named in the frame (not held then) is exported as it ends.
    later = f"traceparent: 00-{'ab' * 16}-{secrets.token_hex(8)}-00\r\n".encode()
    await request(inventory.ports["inbound"], b"GET /stock HTTP/1.1", later)
    await eventually(lambda: len(spans(sink)) == 2, timeout=10, what="the later span of a wanted trace")
    assert spans(sink)[1]["meshui.keep.reason"] == "wanted"
    assert other_trace not in {s["trace_id"] for s in spans(sink)}


@pytest.mark.parametrize(("frame", "field"), [
    ({"type": "export_traces", "id": 7, "trace_ids": ["not-hex"]}, "trace_ids: [0]"),
    ({"type": "export_traces", "id": 7, "trace_ids": ["AB" * 16]}, "trace_ids: [0]"),  # upper case
    ({"type": "export_traces", "id": 7, "trace_ids": ["0" * 32]}, "trace_ids: [0]"),
    ({"type": "export_traces", "id": 7, "trace_ids": ["ab" * 16] * 257}, "trace_ids: has 257"),
    ({"type": "export_traces", "id": 7, "trace_ids": []}, "trace_ids: must be a non-empty list"),
    ({"type": "export_traces", "id": 7, "trace_ids": "ab" * 16}, "trace_ids: must be a non-empty list"),
    ({"type": "export_traces", "id": "7", "trace_ids": ["ab" * 16]}, "id: must be an integer"),
    ({"type": "export_traces", "trace_ids": ["ab" * 16]}, "id: must be an integer"),
])
async def test_a_bad_export_traces_frame_is_nacked_naming_the_field_and_the_sidecar_goes_on(
    servers: Any, sidecars: Sidecars, sink: Sink, control: ControlPlane, frame: dict[str, Any],
    field: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="proxies.control")
    inventory_app = await servers.start(app({}))
    inventory = await sidecars.start("inventory", inventory_app, control=control.url)
    await eventually(lambda: control.of_type("hello"), timeout=10, what="the sidecar's hello")
    trace_id, header = traceparent()
    await request(inventory.ports["inbound"], b"GET /stock HTTP/1.1", header)

    await control.send(frame)
    (nack,) = await eventually(lambda: control.of_type("nack"), timeout=10, what="a nack")
    assert nack["kind"] == "export_traces" and nack["reason"].startswith(field)
    assert nack["version"] == (7 if field.startswith("trace_ids") else 0)
    assert "refused export_traces frame" in caplog.text
    assert spans(sink) == []

    await control.send({"type": "export_traces", "id": 8, "trace_ids": [trace_id]})
    (span,) = await eventually(lambda: spans(sink), timeout=10, what="the span, after the bad frame")
    assert span["trace_id"] == trace_id
    assert inventory.tail is not None and inventory.tail.frames == {"accepted": 1, "rejected": 1}


async def test_without_a_collector_or_with_the_ring_off_there_is_no_tail_keep(
    servers: Any, sidecars: Sidecars, control: ControlPlane,
) -> None:
    inventory_app = await servers.start(app({}))
    off = await sidecars.start("inventory", inventory_app, control=control.url, ring_size=0)
    await eventually(lambda: control.of_type("hello"), timeout=10, what="the sidecar's hello")

    assert off.tail is None and off.plane is not None and off.plane.tail is None
    assert control.of_type("hello")[0]["tail_keep"] is False
    await control.send({"type": "export_traces", "id": 1, "trace_ids": ["ab" * 16]})
    status, _ = await request(off.ports["inbound"], b"GET /stock HTTP/1.1")  # still serving
    assert status.startswith(b"HTTP/1.1 200") and control.of_type("nack") == []
