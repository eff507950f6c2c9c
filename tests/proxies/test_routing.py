"""Routing through a real sidecar on loopback: round robin, unknown services, dead instances."""

from __future__ import annotations

import asyncio
import hashlib

import orjson

from proxies.policy.parser import parse_policy
from tests.ports import free_port
from tests.proxies.conftest import read_response, simple_app, start_sidecar

ROUND_ROBIN = parse_policy({"default": {"load_balancer": "round_robin"}})


async def request(port: int, raw: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        return await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()


def instances(*ports: int) -> list[dict[str, str]]:
    return [
        {"instance": f"i{p}", "version": f"v{i}", "address": f"127.0.0.1:{p}"} for i, p in enumerate(ports)
    ]


async def test_requests_go_round_robin_over_the_instances(servers, telemetry):
    a, b = await servers.start(simple_app), await servers.start(simple_app)
    sidecar = await start_sidecar(telemetry, free_port(), {"catalog": instances(a, b)})
    sidecar.policies.replace(ROUND_ROBIN, "test")
    try:
        out = sidecar.ports["outbound"]
        seen = []
        for _ in range(4):
            _, _, body = await request(out, b"GET http://catalog/x HTTP/1.1\r\n\r\n")
            seen.append(int(body.split(b" ")[0].split(b"=")[1]))
        assert seen == [a, b, a, b]
        assert [r[3] for r in telemetry.requests[-2:]] == ["v0", "v1"]
    finally:
        await sidecar.stop()


async def test_an_unknown_service_is_a_502_naming_the_known_ones(servers, telemetry):
    sidecar = await start_sidecar(telemetry, free_port(), {"catalog": [], "cart": []})
    try:
        status, headers, body = await request(
            sidecar.ports["outbound"], b"GET /x HTTP/1.1\r\nHost: nowhere:80\r\n\r\n"
        )
        assert status.startswith(b"HTTP/1.1 502")
        assert headers[b"x-meshui-error"] == b"unknown-service"
        assert b"'nowhere'" in body and b"cart, catalog" in body
    finally:
        await sidecar.stop()


async def test_a_service_without_instances_is_a_503_no_healthy_upstream(servers, telemetry):
    sidecar = await start_sidecar(telemetry, free_port(), {"catalog": []})
    try:
        status, headers, _ = await request(
            sidecar.ports["outbound"], b"GET /x HTTP/1.1\r\nHost: catalog\r\n\r\n"
        )
        assert status.startswith(b"HTTP/1.1 503")
        assert headers[b"x-meshui-error"] == b"no-healthy-upstream"
        assert telemetry.requests[-1][:5] == ("outbound", "frontend", "catalog", "", 503)
    finally:
        await sidecar.stop()


async def test_a_get_to_a_dead_instance_is_retried_on_the_next_one(servers, telemetry):
    live = await servers.start(simple_app)
    dead = free_port()
    sidecar = await start_sidecar(telemetry, free_port(), {"catalog": instances(dead, live)})
    sidecar.policies.replace(ROUND_ROBIN, "test")
    try:
        status, _, body = await request(sidecar.ports["outbound"], b"GET http://catalog/ HTTP/1.1\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 200") and body.startswith(b"port=%d" % live)
        dead_endpoint = sidecar.registry.snapshot.services["catalog"].endpoints[0]
        assert dead_endpoint.consecutive_5xx == 1  # the outlier detector heard of it
    finally:
        await sidecar.stop()


async def test_a_post_with_a_body_to_a_dead_instance_is_a_503_not_retried(servers, telemetry):
    live = await servers.start(simple_app)
    dead = free_port()
    sidecar = await start_sidecar(telemetry, free_port(), {"catalog": instances(dead, live)})
    sidecar.policies.replace(ROUND_ROBIN, "test")
    try:
        out = sidecar.ports["outbound"]
        post = b"POST http://catalog/ HTTP/1.1\r\ncontent-length: 2\r\n\r\nhi"
        status, headers, _ = await request(out, post)
        assert status.startswith(b"HTTP/1.1 503")
        assert headers[b"x-meshui-error"] == b"upstream-connect-failure"
        status, _, body = await request(out, post)  # round robin: the live one next
        assert body.startswith(b"port=%d" % live)
    finally:
        await sidecar.stop()


async def test_a_dead_local_app_is_a_503_local_app_unavailable(telemetry):
    sidecar = await start_sidecar(telemetry, free_port(), {})
    try:
        status, headers, _ = await request(
            sidecar.ports["inbound"], b"GET / HTTP/1.1\r\nHost: frontend\r\n\r\n"
        )
        assert status.startswith(b"HTTP/1.1 503")
        assert headers[b"x-meshui-error"] == b"local-app-unavailable"
    finally:
        await sidecar.stop()


async def test_a_large_chunked_body_streams_both_ways(servers, telemetry):
    """1 MiB up and 4 MiB down through outbound -> inbound -> app, chunked end to end."""

    async def echo_digest_app(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        digest, size = hashlib.sha256(), 0
        while True:
            n = int((await reader.readline()).strip(), 16)
            if n == 0:
                await reader.readline()
                break
            data = await reader.readexactly(n)
            await reader.readline()
            digest.update(data)
            size += n
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        info = orjson.dumps({"size": size, "sha": digest.hexdigest()})
        writer.write(b"%x\r\n%s\r\n" % (len(info), info))
        block = bytes(range(256)) * 256  # 64 KiB
        for _ in range(64):
            writer.write(b"%x\r\n%s\r\n" % (len(block), block))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    app = await servers.start(echo_digest_app)
    # One sidecar plays both ends: its outbound routes "catalog" to its own inbound.
    sidecar = await start_sidecar(telemetry, app, {}, service="catalog")
    sidecar.registry.apply(
        2,
        {
            "catalog": [
                {"instance": "me", "version": "v1", "address": f"127.0.0.1:{sidecar.ports['inbound']}"}
            ]
        },
    )
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["outbound"])
        writer.write(b"POST http://catalog/up HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n")
        sent = hashlib.sha256()
        piece = b"x" * 16384
        for i in range(64):
            chunk = piece[: 16384 - i]
            sent.update(chunk)
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        status, headers, body = await asyncio.wait_for(read_response(reader), 10)
        writer.close()
        assert status.startswith(b"HTTP/1.1 200")
        info_end = body.index(b"}") + 1
        info = orjson.loads(body[:info_end])
        assert info["sha"] == sent.hexdigest()
        assert len(body) - info_end == 64 * 65536
    finally:
        await sidecar.stop()


async def test_a_bodyless_post_to_a_dead_instance_is_retried_on_the_next_one(servers, telemetry):
    live = await servers.start(simple_app)
    dead = free_port()
    sidecar = await start_sidecar(telemetry, free_port(), {"catalog": instances(dead, live)})
    try:
        status, _, body = await request(
            sidecar.ports["outbound"], b"POST http://catalog/ HTTP/1.1\r\ncontent-length: 0\r\n\r\n"
        )
        assert status.startswith(b"HTTP/1.1 200") and body.startswith(b"port=%d" % live)
    finally:
        await sidecar.stop()


async def test_a_connect_failure_records_no_destination_version(servers, telemetry):
    dead = free_port()
    sidecar = await start_sidecar(telemetry, free_port(), {"catalog": instances(dead)})
    try:
        status, headers, _ = await request(sidecar.ports["outbound"], b"GET http://catalog/ HTTP/1.1\r\n\r\n")
        assert headers[b"x-meshui-error"] == b"upstream-connect-failure"
        assert telemetry.requests[-1][:5] == ("outbound", "frontend", "catalog", "", 503)
    finally:
        await sidecar.stop()


async def test_a_connect_failure_on_every_tried_instance_records_no_destination_version(servers, telemetry):
    first, second = free_port(), free_port()
    sidecar = await start_sidecar(telemetry, free_port(), {"catalog": instances(first, second)})
    try:
        status, headers, _ = await request(sidecar.ports["outbound"], b"GET http://catalog/ HTTP/1.1\r\n\r\n")
        assert headers[b"x-meshui-error"] == b"upstream-connect-failure"
        assert telemetry.requests[-1][:5] == ("outbound", "frontend", "catalog", "", 503)
    finally:
        await sidecar.stop()
