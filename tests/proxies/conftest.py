"""Helpers for sidecar tests: fake transports, recording telemetry, loopback servers, a raw client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from proxies import http1
from proxies.config import SidecarConfig
from proxies.dataplane.limits import ListenerLimits
from proxies.dataplane.plane import DataPlane
from proxies.dataplane.upstream import ConnectionPool, Connector, UpstreamConnection, open_tcp
from proxies.sidecar import Sidecar
from proxies.telemetry import tracecontext
from tests.polling import eventually


class RecordingTelemetry:
    """Stands in for proxies.telemetry.Telemetry: keeps what the data path reports."""

    def __init__(self) -> None:
        self.requests: list[tuple[Any, ...]] = []
        self.spans: list[Any] = []
        self.exemplars: list[tuple[Any, ...]] = []

    def record_request(self, *args: Any) -> None:
        self.requests.append(args)

    def record_exemplar(self, *args: Any) -> None:
        self.exemplars.append(args)

    def record_span(self, span: Any) -> None:
        self.spans.append(span)

    @property
    def requests_total(self) -> int:
        return len(self.requests)

    @property
    def dropped_total(self) -> int:
        return 3

    def prometheus(self) -> str:
        # The shape of the real family (proxies.telemetry.prometheus), one series of it.
        return (
            "# HELP meshui_telemetry_dropped_total Telemetry lost before the collector.\n"
            "# TYPE meshui_telemetry_dropped_total counter\n"
            'meshui_telemetry_dropped_total{signal="spans",reason="no_endpoint"} 3\n'
        )

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class FakeTransport:
    """Collects what a protocol writes; records pause/close calls."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closing = False
        self.aborted = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closing, "write after close"
        self.data += data

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        # What the listener's lingering close does first; the fake counts it as closing.
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def until(predicate: Callable[[], Any], timeout: float = 3.0) -> Any:
    """Poll ``predicate`` on the loop until it is truthy (tight: these are loopback waits)."""
    return await eventually(predicate, timeout, interval=0.001)


class FakeUpstreams:
    """A connector for the data plane: each connect yields an UpstreamConnection on a FakeTransport."""

    def __init__(self) -> None:
        self.connections: list[UpstreamConnection] = []
        self.refuse: set[str] = set()

    async def connect(self, pool: ConnectionPool) -> UpstreamConnection:
        if pool.address in self.refuse:
            raise ConnectionRefusedError(111, "Connection refused")
        conn = UpstreamConnection(pool)
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        self.connections.append(conn)
        return conn


@pytest.fixture
def telemetry() -> RecordingTelemetry:
    return RecordingTelemetry()


@pytest.fixture
def fake_upstreams() -> FakeUpstreams:
    return FakeUpstreams()


def frontend_plane(connector: Connector, telemetry: Any = None, **options: Any) -> DataPlane:
    """The frontend's data plane on fake sockets: upstream connections from ``connector``."""
    return DataPlane(
        service="frontend",
        version="v1",
        app=("127.0.0.1", 9001),
        telemetry=telemetry if telemetry is not None else RecordingTelemetry(),
        trace_incoming=tracecontext.incoming,
        trace_sample=0.0,
        connector=connector,
        **options,
    )


@pytest.fixture
async def plane(telemetry: RecordingTelemetry, fake_upstreams: FakeUpstreams) -> DataPlane:
    """The frontend's data plane, its upstream connections the ``fake_upstreams``."""
    plane = frontend_plane(fake_upstreams.connect, telemetry, span_factory=dict)
    plane.registry.apply(
        1,
        {
            "catalog": [
                {"instance": "c1", "version": "v1", "address": "10.0.0.1:15001"},
                {"instance": "c2", "version": "v2", "address": "10.0.0.2:15001"},
            ],
            "empty": [],
        },
    )
    return plane


def client_of(plane: DataPlane, outbound: bool = True) -> tuple[Any, FakeTransport]:
    """A client connection of the outbound (or inbound) listener on a fake transport."""
    downstream = plane.downstream_factory(outbound)()
    transport = FakeTransport()
    downstream.connection_made(transport)  # type: ignore[arg-type]
    return downstream, transport


# real sockets ----------------------------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class LoopbackServers:
    def __init__(self) -> None:
        self.servers: list[asyncio.Server] = []

    async def start(self, handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for server in self.servers:
            server.close()


@pytest.fixture
async def servers() -> Any:
    s = LoopbackServers()
    yield s
    await s.close()


async def start_sidecar(
    telemetry: Any,
    app_port: int,
    services: dict[str, Any],
    service: str = "frontend",
    control: str | None = None,
    limits: ListenerLimits | None = None,
    connector: Connector = open_tcp,
    identity_files: tuple[str, str, str] | None = None,
    policy: Any = None,
) -> Sidecar:
    """A real Sidecar on loopback with ephemeral ports and a static endpoint set.

    ``control`` is a control channel URL; the sidecar dials it (and keeps retrying).
    ``connector`` opens its upstream connections (TCP unless a test gives another).
    """
    config = SidecarConfig(
        service=service,
        version="v1",
        app=("127.0.0.1", app_port),
        inbound=("127.0.0.1", 0),
        outbound=("127.0.0.1", 0),
        admin=("127.0.0.1", 0),
        control=control,
        token="test-token" if control else None,
        endpoints_file=None,
        otlp=None,
        trace_sample=0.0,
        proxy_id=f"{service}-v1-test",
        advertise=None,
        log_level="INFO",
        limits=limits or ListenerLimits(),
        identity_files=identity_files,
        **({"policy": policy} if policy is not None else {}),
    )
    sidecar = Sidecar(config, telemetry, tracecontext.incoming, connector=connector)
    await sidecar.start()
    sidecar.registry.apply(1, services)
    return sidecar


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """Read one response: (status line, lower-cased headers, de-chunked body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
    body = b""
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readline()).strip(), 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
    return lines[0], headers, body


async def simple_app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An upstream that answers every request with its own port and the request line."""
    port = writer.get_extra_info("sockname")[1]
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            body = b"port=%d %s" % (port, head.split(b"\r\n", 1)[0])
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def parse_responses(data: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Every response in ``data``, parsed strictly (llhttp): (status, lower-cased fields, body).

    Raises if the bytes are not a sequence of well-formed responses (a trailing partial one
    included).
    """
    responses: list[tuple[int, dict[bytes, bytes], bytes]] = []

    class Collect:
        def __init__(self) -> None:
            self.fields: dict[bytes, bytes] = {}
            self.body = b""
            self.begun = 0

        def on_message_begin(self) -> None:
            self.fields, self.body = {}, b""
            self.begun += 1

        def on_header(self, name: bytes, value: bytes) -> None:
            self.fields[name.lower()] = value

        def on_body(self, body: bytes) -> None:
            self.body += body

        def on_message_complete(self) -> None:
            responses.append((parser.get_status_code(), self.fields, self.body))

    collect = Collect()
    parser = http1.ResponseParser(collect)
    parser.feed_data(data)
    assert collect.begun == len(responses), f"a partial response at the end of {data!r}"
    return responses


async def read_until_closed(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything the peer sends until it closes the connection (fails past ``timeout``)."""
    return await asyncio.wait_for(reader.read(-1), timeout)
