"""The admin port: readiness, metrics, config and endpoints views."""

from __future__ import annotations

import asyncio

import orjson

from proxies.telemetry import Resource, Telemetry
from tests.proxies.conftest import free_port, read_response, simple_app, start_sidecar


async def get(port: int, path: str) -> tuple[bytes, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status, _, body = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    return status, body


async def test_ready_is_503_until_endpoints_are_known_then_200(telemetry):
    sidecar = await start_sidecar(telemetry, free_port(), {})
    try:
        sidecar.registry.known = False
        status, body = await get(sidecar.ports["admin"], "/ready")
        assert status.startswith(b"HTTP/1.1 503") and b"no endpoints" in body
        sidecar.registry.apply(2, {})
        status, _ = await get(sidecar.ports["admin"], "/ready")
        assert status.startswith(b"HTTP/1.1 200")
    finally:
        await sidecar.stop()


async def test_metrics_count_requests_by_direction_destination_and_status(servers):
    telemetry = Telemetry(Resource("frontend", "v1", "frontend-v1-test"), None, 0.0)
    app = await servers.start(simple_app)
    sidecar = await start_sidecar(telemetry, app, {"catalog": []})
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["outbound"])
        writer.write(b"GET http://catalog/ HTTP/1.1\r\n\r\n")
        await read_response(reader)
        writer.close()
        _, body = await get(sidecar.ports["admin"], "/metrics")
        text = body.decode()
        assert (
            'meshui_proxy_requests_total{direction="outbound",source="frontend",destination="catalog",'
            'destination_version="",code="503",source_sidecar="true"} 1'
        ) in text
        assert "meshui_proxy_responses_total" not in text  # requests are counted once
        assert "meshui_proxy_active_connections" in text
    finally:
        await sidecar.stop()


async def test_metrics_include_what_telemetry_renders(telemetry):
    sidecar = await start_sidecar(telemetry, free_port(), {})
    try:
        _, body = await get(sidecar.ports["admin"], "/metrics")
        assert 'meshui_telemetry_dropped_total{signal="spans"} 3' in body.decode()
    finally:
        await sidecar.stop()


async def test_heartbeat_counts_requests_and_drops_from_telemetry(servers):
    telemetry = Telemetry(Resource("frontend", "v1", "frontend-v1-test"), None, 0.0)
    app = await servers.start(simple_app)
    sidecar = await start_sidecar(telemetry, app, {"catalog": []})
    try:
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["outbound"])
            writer.write(b"GET http://catalog/ HTTP/1.1\r\n\r\n")
            await read_response(reader)
            writer.close()
        state = sidecar.heartbeat_state()
        assert state["requests_total"] == 2
        assert state["telemetry_dropped"] == 0
    finally:
        await sidecar.stop()


async def test_config_and_endpoints_show_the_set_in_force(telemetry):
    sidecar = await start_sidecar(
        telemetry,
        free_port(),
        {"catalog": [{"instance": "c1", "version": "v2", "address": "127.0.0.1:1"}]},
    )
    try:
        _, body = await get(sidecar.ports["admin"], "/config")
        config = orjson.loads(body)
        assert config["endpoints"]["version"] == 1
        assert config["endpoints"]["services"]["catalog"][0]["version"] == "v2"
        _, body = await get(sidecar.ports["admin"], "/endpoints")
        endpoint = orjson.loads(body)["destinations"]["catalog"][0]
        assert endpoint == {
            "instance": "c1",
            "address": "127.0.0.1:1",
            "version": "v2",
            "outstanding": 0,
            "requests_total": 0,
            "failures": 0,
            "cooloff_remaining_s": 0.0,
        }
        status, _ = await get(sidecar.ports["admin"], "/nope")
        assert status.startswith(b"HTTP/1.1 404")
    finally:
        await sidecar.stop()
