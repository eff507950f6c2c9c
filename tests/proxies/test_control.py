"""The control channel client against a small real websockets server."""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus

import pytest
from websockets.asyncio.server import serve

from proxies.control.client import ControlClient, backoff_delay
from proxies.mesh.endpoints import EndpointRegistry
from tests.ports import free_port
from tests.proxies.conftest import until

TOKEN = "s3cret"
GOOD = {"catalog": [{"instance": "c1", "version": "v1", "address": "127.0.0.1:15001"}]}


class FakeMeshui:
    """Accepts sidecars with the right token, records frames, sends what a test queues."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[dict] = []
        self.connections: list = []
        self.server = None

    async def start(self) -> None:
        def check_token(connection, request):
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return connection.respond(HTTPStatus.FORBIDDEN, "bad token\n")
            return None

        async def handler(ws):
            self.connections.append(ws)
            async for frame in ws:
                message = json.loads(frame)
                self.received.append(message)
                if message["type"] == "hello":
                    await ws.send(
                        json.dumps(
                            {"type": "welcome", "proxy_id": message["proxy_id"], "heartbeat_interval": 0.05}
                        )
                    )

        self.server = await serve(handler, "127.0.0.1", self.port, process_request=check_token)

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        self.connections.clear()

    async def send(self, message: dict) -> None:
        await self.connections[-1].send(json.dumps(message))

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.received if m["type"] == kind]


@pytest.fixture
async def meshui():
    server = FakeMeshui(free_port())
    await server.start()
    yield server
    await server.stop()


def make_client(port: int, token: str = TOKEN) -> ControlClient:
    return ControlClient(
        f"ws://127.0.0.1:{port}/api/v1/control",
        token,
        {"proxy_id": "frontend-v1-abc", "service": "frontend", "version": "v1", "address": "127.0.0.1:15001"},
        EndpointRegistry(),
        lambda: {"endpoints_version": 0, "requests_total": 7},
        backoff_min=0.01,
        backoff_max=0.05,
    )


async def test_it_says_hello_applies_endpoints_and_acks(meshui):
    client = make_client(meshui.port)
    client.start()
    try:
        await until(lambda: client.state == "connected")
        assert meshui.of_type("hello")[0]["proxy_id"] == "frontend-v1-abc"
        await meshui.send({"type": "endpoints", "version": 3, "services": GOOD})
        await until(lambda: meshui.of_type("ack"))
        assert meshui.of_type("ack")[0] == {"type": "ack", "kind": "endpoints", "version": 3}
        assert client.registry.snapshot.version == 3
        await until(lambda: meshui.of_type("heartbeat"))
        assert meshui.of_type("heartbeat")[0]["state"]["requests_total"] == 7
    finally:
        await client.stop()


async def test_a_malformed_endpoints_message_is_nacked_and_the_previous_set_stays(meshui):
    client = make_client(meshui.port)
    client.start()
    try:
        await until(lambda: client.state == "connected")
        await meshui.send({"type": "endpoints", "version": 1, "services": GOOD})
        await until(lambda: meshui.of_type("ack"))
        bad = {"catalog": [{"instance": "c1", "version": "v1", "address": "no-port"}]}
        await meshui.send({"type": "endpoints", "version": 2, "services": bad})
        await until(lambda: meshui.of_type("nack"))
        nack = meshui.of_type("nack")[0]
        assert nack["version"] == 2 and "services.catalog[0].address" in nack["reason"]
        assert client.registry.snapshot.version == 1
    finally:
        await client.stop()


async def test_a_config_message_is_acked_and_kept(meshui):
    client = make_client(meshui.port)
    client.start()
    try:
        await until(lambda: client.state == "connected")
        await meshui.send(
            {"type": "config", "revision": 4, "policy": {"default": {"retries": {"attempts": 2}}}}
        )
        await until(lambda: meshui.of_type("ack"))
        assert meshui.of_type("ack")[0] == {"type": "ack", "kind": "config", "version": 4}
        assert client.view()["config"] == {"revision": 4, "policy": {"default": {"retries": {"attempts": 2}}}}
    finally:
        await client.stop()


async def test_a_refused_token_is_logged_and_retried(meshui, caplog):
    caplog.set_level(logging.ERROR, logger="proxies.control")
    client = make_client(meshui.port, token="wrong")
    client.start()
    try:
        await until(lambda: client.state == "refused")
        # The refusal's body says why (meshui's plaintext refusal does too, test_https.py).
        assert "control plane refused us (HTTP 403): bad token" in caplog.text
        assert not meshui.of_type("hello")
    finally:
        await client.stop()


async def test_it_reconnects_after_the_server_restarts_and_keeps_its_endpoints(meshui):
    client = make_client(meshui.port)
    client.start()
    try:
        await until(lambda: client.state == "connected")
        await meshui.send({"type": "endpoints", "version": 5, "services": GOOD})
        await until(lambda: meshui.of_type("ack"))
        await meshui.stop()
        await until(lambda: client.state == "disconnected")
        assert client.registry.snapshot.version == 5
        await meshui.start()
        await until(lambda: len(meshui.of_type("hello")) == 2)
        await until(lambda: client.state == "connected")
    finally:
        await client.stop()


def test_backoff_grows_exponentially_with_jitter_within_bounds():
    delays = [backoff_delay(n) for n in range(12)]
    assert all(0.2 <= d <= 5.0 for d in delays)
    assert backoff_delay(0) <= 0.2 and backoff_delay(20) >= 2.5


async def test_a_frame_that_is_not_json_is_ignored(meshui):
    client = make_client(meshui.port)
    client.start()
    try:
        await until(lambda: client.state == "connected")
        await meshui.connections[-1].send("not json")
        await meshui.send({"type": "endpoints", "version": 9, "services": GOOD})
        await until(lambda: meshui.of_type("ack"))
        assert client.state == "connected"
    finally:
        await client.stop()
    await asyncio.sleep(0)
