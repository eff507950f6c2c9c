"""The data listeners' limits: head sizes (414, 431), header and idle timeouts, the connection cap."""

from __future__ import annotations

import asyncio

import pytest

from proxies.config import parse_config
from proxies.dataplane.limits import ListenerLimits, fit_connection_cap, within_fd_limit
from proxies.dataplane.plane import DataPlane
from proxies.telemetry import tracecontext
from tests.proxies.conftest import (
    FakeUpstreams,
    client_of,
    parse_responses,
    read_response,
    read_until_closed,
    simple_app,
    start_sidecar,
    until,
)


def plane_with(telemetry, limits: ListenerLimits, upstreams: FakeUpstreams) -> DataPlane:
    """The frontend's data plane (local app on :9001) with ``limits``, connecting to ``upstreams``."""
    return DataPlane(
        service="frontend",
        version="v1",
        app=("127.0.0.1", 9001),
        telemetry=telemetry,
        trace_incoming=tracecontext.incoming,
        trace_sample=0.0,
        limits=limits,
        connector=upstreams.connect,
    )


@pytest.fixture
async def small_plane(telemetry, fake_upstreams) -> DataPlane:
    """A plane with small limits, so each boundary is cheap to reach."""
    plane = plane_with(telemetry, ListenerLimits(
        max_target_bytes=100, max_header_bytes=200, max_headers=8, header_timeout_s=0.05), fake_upstreams)
    plane.registry.apply(1, {"catalog": [{"instance": "c1", "version": "v1", "address": "10.0.0.1:1"}]})
    return plane


def head(target: bytes = b"/a", fields: bytes = b"") -> bytes:
    return b"GET %b HTTP/1.1\r\nHost: catalog\r\n%b\r\n" % (target, fields)


def fields_of(size: int) -> bytes:
    """Header fields taking exactly ``size`` bytes on the wire along with "Host: catalog\\r\\n"."""
    pad = size - len(b"Host: catalog\r\n") - len(b"X-Pad: \r\n")
    return b"X-Pad: " + b"p" * pad + b"\r\n"


def rejected(plane: DataPlane, direction: str, reason: str) -> int:
    return plane.metrics.rejected[(direction, reason)]


def refused_with(answer: bytes, status: int, code: bytes) -> bool:
    [(got, fields, _)] = parse_responses(answer)
    return got == status and fields[b"x-meshui-error"] == code and fields[b"connection"] == b"close"


# sizes ------------------------------------------------------------------------------------


async def test_a_target_at_the_limit_is_forwarded_and_one_byte_more_is_414(small_plane, fake_upstreams):
    listener, client = client_of(small_plane)
    listener.data_received(head(b"/" + b"t" * 99))
    await until(lambda: fake_upstreams.connections and fake_upstreams.connections[0].transport.data)
    assert client.take() == b""
    listener, client = client_of(small_plane)
    listener.data_received(head(b"/" + b"t" * 100))
    assert refused_with(client.take(), 414, b"target-too-long")
    assert client.closing
    assert rejected(small_plane, "outbound", "target-too-long") == 1


async def test_a_long_target_is_refused_as_it_streams_in_before_the_head_ends(small_plane):
    listener, client = client_of(small_plane)
    listener.data_received(b"GET /")
    for _ in range(30):
        listener.data_received(b"tttt")
    assert refused_with(client.take(), 414, b"target-too-long")


@pytest.mark.parametrize("read_size", [1, 7, 64, 100_000])
async def test_header_fields_at_the_limit_are_forwarded_whatever_the_reads(
    small_plane, fake_upstreams, read_size
):
    data = b"GET /a HTTP/1.1\r\nHost: catalog\r\n" + fields_of(200) + b"\r\n"
    listener, client = client_of(small_plane)
    for i in range(0, len(data), read_size):
        listener.data_received(data[i : i + read_size])
    await until(lambda: fake_upstreams.connections and fake_upstreams.connections[0].transport.data)
    assert client.take() == b""
    assert b"X-Pad: ppp" in fake_upstreams.connections[0].transport.data


@pytest.mark.parametrize("read_size", [1, 7, 64, 100_000])
async def test_one_header_byte_past_the_limit_is_431_whatever_the_reads(small_plane, read_size):
    data = b"GET /a HTTP/1.1\r\nHost: catalog\r\n" + fields_of(201) + b"\r\n"
    listener, client = client_of(small_plane)
    for i in range(0, len(data), read_size):
        listener.data_received(data[i : i + read_size])
    assert refused_with(client.take(), 431, b"headers-too-large")
    assert rejected(small_plane, "outbound", "headers-too-large") == 1


async def test_the_request_line_does_not_count_towards_the_header_bytes(small_plane, fake_upstreams):
    data = b"GET /" + b"t" * 99 + b" HTTP/1.1\r\nHost: catalog\r\n" + fields_of(200) + b"\r\n"
    listener, client = client_of(small_plane)
    listener.data_received(data)
    await until(lambda: fake_upstreams.connections and fake_upstreams.connections[0].transport.data)
    assert client.take() == b""


async def test_a_huge_header_value_is_cut_at_the_budget_and_never_parsed_whole(small_plane):
    listener, client = client_of(small_plane)
    listener.data_received(b"GET /a HTTP/1.1\r\nHost: catalog\r\nX-Big: ")
    listener.data_received(b"b" * 1_000_000)
    assert refused_with(client.take(), 431, b"headers-too-large")
    listener.data_received(b"b" * 1_000_000)  # discarded (lingering close), never parsed
    assert client.take() == b""


async def test_more_header_fields_than_max_headers_is_431(small_plane):
    listener, client = client_of(small_plane)
    listener.data_received(head(fields=b"".join(b"X-%d: v\r\n" % i for i in range(8))))
    assert refused_with(client.take(), 431, b"too-many-headers")


async def test_a_declared_body_past_the_body_limit_is_413_before_anything_goes_upstream(
    telemetry, fake_upstreams
):
    plane = plane_with(telemetry, ListenerLimits(max_request_body_bytes=10), fake_upstreams)
    listener, client = client_of(plane, outbound=False)
    listener.data_received(b"POST /a HTTP/1.1\r\nHost: frontend\r\nContent-Length: 10\r\n\r\n0123456789")
    await until(lambda: fake_upstreams.connections and fake_upstreams.connections[0].transport.data)
    assert client.take() == b""
    listener, client = client_of(plane, outbound=False)
    listener.data_received(b"POST /a HTTP/1.1\r\nHost: frontend\r\nContent-Length: 11\r\n\r\n0123456789x")
    assert refused_with(client.take(), 413, b"body-too-large")
    assert len(fake_upstreams.connections) == 1
    assert rejected(plane, "inbound", "body-too-large") == 1


async def test_a_chunked_body_passing_the_body_limit_is_413_and_its_upstream_connection_closed(
    telemetry, fake_upstreams
):
    plane = plane_with(telemetry, ListenerLimits(max_request_body_bytes=10), fake_upstreams)
    listener, client = client_of(plane, outbound=False)
    listener.data_received(
        b"POST /a HTTP/1.1\r\nHost: frontend\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n"
    )
    upstream = await until(lambda: fake_upstreams.connections and fake_upstreams.connections[0])
    assert client.take() == b""
    listener.data_received(b"5\r\n6789x\r\n0\r\n\r\n")
    assert refused_with(client.take(), 413, b"body-too-large")
    assert upstream.transport.closing  # the upstream never sees the request complete


# timeouts ---------------------------------------------------------------------------------


async def test_a_small_request_in_one_read_arms_no_timer(small_plane, fake_upstreams):
    listener, _ = client_of(small_plane)
    listener.data_received(head())
    assert listener._head_timer is None


async def test_a_head_not_finished_within_the_header_timeout_is_408_and_closed(small_plane):
    listener, client = client_of(small_plane)
    listener.data_received(b"GET /a HTTP/1.1\r\nHost: cat")
    assert listener._head_timer is not None
    await until(lambda: client.closing)
    assert refused_with(client.take(), 408, b"header-timeout")
    assert small_plane.metrics.timeouts["header"] == 1
    assert rejected(small_plane, "outbound", "header-timeout") == 1


async def test_a_head_finished_in_time_cancels_the_header_timer(small_plane, fake_upstreams):
    listener, client = client_of(small_plane)
    listener.data_received(b"GET /a HTTP/1.1\r\nHost: cat")
    timer = listener._head_timer
    listener.data_received(b"alog\r\n\r\n")
    assert listener._head_timer is None and timer.cancelled()
    assert client.take() == b""


async def test_a_slow_client_sending_a_byte_at_a_time_still_gets_408(small_plane):
    listener, client = client_of(small_plane)
    listener.data_received(b"G")
    for byte in b"ET /a HTTP/1.1\r\nHost: c":
        if client.closing:
            break
        listener.data_received(bytes([byte]))
        await asyncio.sleep(0.005)
    await until(lambda: client.closing)
    assert refused_with(client.take(), 408, b"header-timeout")


async def test_slow_clients_on_real_sockets_get_408_and_the_listener_keeps_serving(servers, telemetry):
    app = await servers.start(simple_app)
    sidecar = await start_sidecar(telemetry, app, {}, limits=ListenerLimits(header_timeout_s=0.2))
    try:
        slow = [await asyncio.open_connection("127.0.0.1", sidecar.ports["inbound"]) for _ in range(5)]
        head = b"GET /slow HTTP/1.1\r\nHost: frontend\r\nX-Drip: "
        for _, writer in slow:
            writer.write(head)
        # A byte every 50 ms keeps each connection busy; the head still has to end within 0.2 s.
        for _ in range(4):
            await asyncio.sleep(0.05)  # the client's pace, not a wait for the sidecar
            for reader, writer in slow:
                if not reader.at_eof():
                    writer.write(b"x")
        for reader, writer in slow:
            [(status, fields, _)] = parse_responses(await read_until_closed(reader))
            assert (status, fields[b"x-meshui-error"]) == (408, b"header-timeout")
            writer.close()
        assert sidecar.plane.metrics.timeouts["header"] == 5
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["inbound"])
        writer.write(b"GET /a HTTP/1.1\r\nHost: frontend\r\n\r\n")
        status_line, _, _ = await asyncio.wait_for(read_response(reader), 2)
        assert status_line.startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        await sidecar.stop()


async def test_a_connection_that_never_sends_a_byte_is_closed_after_the_header_timeout(
    telemetry, fake_upstreams
):
    plane = plane_with(telemetry, ListenerLimits(header_timeout_s=3), fake_upstreams)
    listener, client = client_of(plane, outbound=False)
    for _ in range(2):
        plane.sweep_idle()
    assert not client.closing
    plane.sweep_idle()  # the third one-second tick
    assert client.closing and client.take() == b""  # no request: nothing to answer
    assert plane.metrics.timeouts["header"] == 1


async def test_a_keep_alive_connection_idle_past_the_client_idle_timeout_is_closed(servers, telemetry):
    app = await servers.start(simple_app)
    sidecar = await start_sidecar(telemetry, app, {}, limits=ListenerLimits(client_idle_timeout_s=2))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["inbound"])
        writer.write(b"GET /a HTTP/1.1\r\nHost: frontend\r\n\r\n")
        status, _, _ = await asyncio.wait_for(read_response(reader), 2)
        assert status.startswith(b"HTTP/1.1 200")
        sidecar.plane.sweep_idle()
        assert not reader.at_eof()
        sidecar.plane.sweep_idle()
        assert await read_until_closed(reader) == b""
        assert sidecar.plane.metrics.timeouts["idle"] == 1
        writer.close()
    finally:
        await sidecar.stop()


# the connection cap ----------------------------------------------------------------------


async def admin_get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET %b HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    data = await read_until_closed(reader)
    writer.close()
    return data


async def test_past_the_connection_cap_a_client_gets_503_while_ready_still_answers(servers, telemetry):
    app = await servers.start(simple_app)
    sidecar = await start_sidecar(telemetry, app, {}, limits=ListenerLimits(max_connections=2))
    held = []
    try:
        for _ in range(2):
            held.append(await asyncio.open_connection("127.0.0.1", sidecar.ports["outbound"]))
        await until(lambda: sidecar.plane.metrics.active_connections["outbound"] == 2)
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["outbound"])
        [(status, fields, _)] = parse_responses(await read_until_closed(reader))
        writer.close()
        assert (status, fields[b"x-meshui-error"], fields[b"connection"]) == (
            503,
            b"connection-limit",
            b"close",
        )
        assert fields[b"retry-after"] == b"1"
        assert b"HTTP/1.1 200 OK" in await admin_get(sidecar.ports["admin"], "/ready")
        # The inbound listener has a cap of its own, not reached.
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["inbound"])
        writer.write(b"GET /a HTTP/1.1\r\nHost: frontend\r\n\r\n")
        status_line, _, _ = await asyncio.wait_for(read_response(reader), 2)
        assert status_line.startswith(b"HTTP/1.1 200")
        writer.close()
        metrics = (await admin_get(sidecar.ports["admin"], "/metrics")).decode()
        assert 'meshui_proxy_refused_connections_total{direction="outbound"} 1' in metrics
        assert 'meshui_proxy_refused_connections_total{direction="inbound"} 0' in metrics
        assert 'meshui_proxy_active_connections{side="outbound"} 2' in metrics
        # A held connection closing frees its place.
        held.pop()[1].close()
        await until(lambda: sidecar.plane.metrics.active_connections["outbound"] == 1)
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["outbound"])
        await until(lambda: sidecar.plane.metrics.active_connections["outbound"] == 2)
        assert sidecar.plane.metrics.refused_connections["outbound"] == 1
        writer.close()
    finally:
        for _, w in held:
            w.close()
        await sidecar.stop()


def test_the_connection_cap_is_fitted_under_the_file_descriptor_limit():
    assert fit_connection_cap(1024, 100_000) == 1024
    assert fit_connection_cap(1024, 512) == (512 - 64) // 4
    limits, soft = within_fd_limit(ListenerLimits(max_connections=1024), soft=1024, hard=524288)
    assert (limits.max_connections, soft) == (1024, 4 * 1024 + 64)  # the soft limit is raised
    limits, soft = within_fd_limit(ListenerLimits(max_connections=1024), soft=512, hard=512)
    assert (limits.max_connections, soft) == (112, 512)  # the cap is lowered


# configuration ---------------------------------------------------------------------------

BASE = ["--service", "s", "--version", "v1", "--app", "127.0.0.1:1", "--endpoints", "e.json"]


def test_the_limits_come_from_flags_or_the_environment():
    config = parse_config(
        [*BASE, "--max-header-bytes", "1000", "--header-timeout", "2.5"],
        {"MESHUI_SIDECAR_MAX_CONNECTIONS": "7", "MESHUI_SIDECAR_CLIENT_IDLE_TIMEOUT": "30"},
    )
    assert config.limits == ListenerLimits(
        max_header_bytes=1000, header_timeout_s=2.5, max_connections=7, client_idle_timeout_s=30
    )
    assert parse_config(BASE, {}).limits == ListenerLimits()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--max-connections", "0", "--max-connections must be at least 1"),
        ("--max-request-body-bytes", "-1", "--max-request-body-bytes must be 0 (no limit) or more"),
        ("--max-target-bytes", "lots", "--max-target-bytes must be a whole number"),
        ("--header-timeout", "-1", "--header-timeout must be a number of seconds above 0"),
        ("--client-idle-timeout", "inf", "--client-idle-timeout must be a number of seconds above 0"),
    ],
)
def test_a_bad_limit_stops_the_start_naming_its_flag(capsys, flag, value, message):
    with pytest.raises(SystemExit):
        parse_config([*BASE, flag, value], {})
    assert message in capsys.readouterr().err


async def test_each_listener_counts_its_refusals_by_code_on_metrics(small_plane):
    for data in (head(b"/" + b"t" * 200), b"GET /a HTTP/1.1\r\nBad\r\n\r\n"):
        listener, _ = client_of(small_plane, outbound=False)
        listener.data_received(data)
    text = small_plane.metrics.render()
    assert 'meshui_proxy_rejected_requests_total{direction="inbound",reason="target-too-long"} 1' in text
    assert 'meshui_proxy_rejected_requests_total{direction="inbound",reason="bad-request"} 1' in text
    assert 'meshui_proxy_rejected_requests_total{direction="outbound",reason="headers-too-large"} 0' in text
    assert 'meshui_proxy_timeouts_total{kind="header"} 0' in text
