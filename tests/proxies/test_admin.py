"""The admin port: readiness, metrics, config and endpoints views."""

from __future__ import annotations

import asyncio
import re

import orjson

from proxies.telemetry import Resource, Telemetry
from tests.ports import free_port
from tests.proxies.conftest import read_response, simple_app, start_sidecar


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
        assert 'meshui_telemetry_dropped_total{signal="spans",reason="no_endpoint"} 3' in body.decode()
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
        assert config["policy"]["revision"] == 0 and config["policy"]["source"] == "defaults"
        assert config["policy"]["in_force"]["default"]["load_balancer"] == "peak_ewma"
        _, body = await get(sidecar.ports["admin"], "/endpoints")
        catalog = orjson.loads(body)["destinations"]["catalog"]
        assert catalog["pool"]["max_requests"] == {"active": 0, "limit": 1024}
        assert catalog["endpoints"] == [
            {
                "instance": "c1",
                "address": "127.0.0.1:1",
                "version": "v2",
                "outstanding": 0,
                "requests_total": 0,
                "ewma_ms": 30.0,
                "idle_connections": 0,
                "overflows": 0,
                "consecutive_5xx": 0,
                "consecutive_gateway": 0,
                "ejected": False,
                "ejected_until": None,
                "ejected_remaining_s": 0.0,
                "times_ejected": 0,
                "ejections": 0,
            }
        ]
        status, _ = await get(sidecar.ports["admin"], "/nope")
        assert status.startswith(b"HTTP/1.1 404")
    finally:
        await sidecar.stop()


_METADATA = re.compile(r"# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)")
_SAMPLE = re.compile(
    r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (\S+)'
)


def families(text: str) -> dict[str, dict[str, list[str]]]:
    """Parse Prometheus text 0.0.4 strictly: {family: {"HELP": [...], "TYPE": [...], "samples": [...]}}.

    Fails on a line that is neither metadata nor a sample, on a sample before its family's
    TYPE, and on a family that starts again after another one began.
    """
    found: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        metadata = _METADATA.fullmatch(line)
        if metadata:
            kind, name, value = metadata.groups()
        else:
            sample = _SAMPLE.fullmatch(line)
            assert sample, f"not Prometheus text: {line!r}"
            name, kind, value = sample[1], "samples", line
            float(sample[3])
            assert "TYPE" in found.get(name, {}), f"sample before its TYPE: {line!r}"
        if name != current:
            assert name not in found, f"family {name} appears twice"
            current = name
            found[name] = {"HELP": [], "TYPE": [], "samples": []}
        found[name][kind].append(value)
    return found


async def test_every_metrics_family_has_one_help_and_one_type_line(servers):
    telemetry = Telemetry(Resource("frontend", "v1", "frontend-v1-test"), None, 0.0)
    app = await servers.start(simple_app)
    sidecar = await start_sidecar(
        telemetry,
        app,
        {"catalog": [{"instance": "c1", "version": "v1", "address": f"127.0.0.1:{free_port()}"}]},
        control=f"ws://127.0.0.1:{free_port()}/api/v1/control",  # nobody listens: disconnected
    )
    try:
        for raw in (b"GET http://catalog/ HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["outbound"])
            writer.write(raw)
            await read_response(reader)
            writer.close()
        _, body = await get(sidecar.ports["admin"], "/metrics")
        parsed = families(body.decode())
        for name, family in parsed.items():
            assert len(family["HELP"]) == 1, name
            assert len(family["TYPE"]) == 1, name
            assert family["samples"], name
            assert len(set(family["samples"])) == len(family["samples"]), name
        assert list(parsed) == [
            "meshui_proxy_upstream_connect_errors_total",
            "meshui_proxy_rejected_requests_total",
            "meshui_proxy_refused_connections_total",
            "meshui_proxy_active_connections",
            "meshui_proxy_retries_total",
            "meshui_proxy_retry_budget_exhausted_total",
            "meshui_proxy_overflow_total",
            "meshui_proxy_ejections_total",
            "meshui_proxy_timeouts_total",
            "meshui_proxy_faults_total",
            "meshui_proxy_rate_limited_total",
            "meshui_proxy_mtls_requests_total",
            "meshui_proxy_authz_denied_total",
            "meshui_proxy_authz_audit_denied_total",
            "meshui_proxy_mtls_refused_total",
            "meshui_proxy_endpoints_version",
            "meshui_proxy_control_connected",
            "meshui_telemetry_dropped_total",
            "meshui_telemetry_exported_total",
            "meshui_telemetry_export_errors_total",
            "meshui_telemetry_queue_spans",
            "meshui_proxy_requests_total",
            "meshui_proxy_request_duration_ms_total",
            "meshui_proxy_requests_overflow_total",
        ]
        assert parsed["meshui_proxy_requests_overflow_total"]["TYPE"] == ["counter"]
        assert (
            'meshui_proxy_rejected_requests_total{direction="outbound",reason="bad-request"} 1'
            in (parsed["meshui_proxy_rejected_requests_total"]["samples"])
        )
    finally:
        await sidecar.stop()
