"""The sidecar control channel, over a real channel layer and a real Redis."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from django.test import Client
from django.utils import timezone

from meshui.registry.models import Instance, SyncState
from meshui.registry.tasks import sweep_stale_instances
from meshui.routing import websocket_urlpatterns
from tests.meshui.join_tokens import join_token
from tests.meshui.websocket import WebsocketCommunicator
from tests.polling import eventually, first_matching

pytestmark = pytest.mark.django_db(transaction=True)

application = URLRouter(websocket_urlpatterns)


def sidecar(service: str, client: tuple[str, int] = ("10.0.0.7", 5123),
            token: str | None = None) -> WebsocketCommunicator:
    """A control client of one of ``service``'s sidecars, with ``service``'s join token
    (tests/meshui/join_tokens.py) unless ``token`` is given ("" for no header at all)."""
    token = join_token(service) if token is None else token
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    communicator = WebsocketCommunicator(application, "/api/v1/control", headers=headers)
    communicator.scope["client"] = client
    return communicator


def hello(proxy_id: str, service: str, version: str = "v1", port: int = 9001) -> dict[str, Any]:
    return {"type": "hello", "proxy_id": proxy_id, "service": service, "version": version,
            "address": f"127.0.0.1:{port}", "admin": f"127.0.0.1:{port + 1000}", "pid": 4242,
            "sidecar_version": "0.1.0"}


async def receive(communicator: WebsocketCommunicator, timeout: float = 3) -> dict[str, Any]:
    return json.loads(await communicator.receive_from(timeout=timeout))


async def receive_until(communicator: WebsocketCommunicator, predicate: Any,
                        timeout: float = 5) -> dict[str, Any]:
    """Frames until one matches (older endpoint versions may arrive first)."""
    return await first_matching(lambda seconds: receive(communicator, seconds), predicate,
                                timeout, min_wait=0.05)


async def register(communicator: WebsocketCommunicator, frame: dict[str, Any]
                   ) -> dict[str, Any]:
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to(frame)
    welcome = await receive(communicator)
    assert welcome["type"] == "welcome"
    return await receive_until(communicator, lambda f: f["type"] == "endpoints")


async def until(condition: Any, timeout: float = 5) -> None:
    await eventually(database_sync_to_async(condition), timeout, interval=0.02)


async def test_a_wrong_or_missing_token_is_refused_at_the_handshake_and_logged(
    meshui_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="meshui")
    join_token("catalog")  # a real token exists; these are not it
    for token in ("not-a-join-token", "mjt_" + "x" * 43, ""):
        communicator = sidecar("catalog", token=token)
        connected, code = await communicator.connect()
        assert not connected
        assert code == 403 or code is None or code == 1000  # closed before accept
    assert "10.0.0.7:5123" in caplog.text
    assert "not a join token" in caplog.text and "unknown join token" in caplog.text
    assert "missing token" in caplog.text


async def test_hello_gets_a_welcome_and_endpoints_listing_itself(meshui_settings: Any) -> None:
    communicator = sidecar("catalog")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to(hello("catalog-1", "catalog", "v2"))
    assert await receive(communicator) == {
        "type": "welcome", "proxy_id": "catalog-1", "heartbeat_interval": 5}
    assert (await receive(communicator))["type"] == "trust_bundle"
    endpoints = await receive(communicator)
    assert endpoints["type"] == "endpoints"
    assert endpoints["version"] >= 1
    assert endpoints["services"] == {
        "catalog": [{"instance": "catalog-1", "version": "v2", "address": "127.0.0.1:9001"}]}
    instance = await database_sync_to_async(Instance.objects.get)(proxy_id="catalog-1")
    assert instance.connected and instance.pid == 4242
    assert instance.admin_address == "127.0.0.1:10001"
    await communicator.disconnect()


async def test_a_second_sidecar_is_broadcast_to_the_first(meshui_settings: Any) -> None:
    first, second = sidecar("frontend"), sidecar("catalog")
    await register(first, hello("frontend-1", "frontend"))
    mine = await register(second, hello("catalog-1", "catalog", port=9002))
    assert set(mine["services"]) == {"frontend", "catalog"}

    update = await receive_until(first, lambda f: "catalog" in f.get("services", {}))
    assert update["version"] == mine["version"]
    assert update["services"]["catalog"][0]["instance"] == "catalog-1"
    await first.disconnect()
    await second.disconnect()


async def test_a_disconnect_removes_the_instance_from_everyone_s_endpoints(
    meshui_settings: Any
) -> None:
    stays, leaves = sidecar("frontend"), sidecar("catalog")
    await register(stays, hello("frontend-1", "frontend"))
    await register(leaves, hello("catalog-1", "catalog", port=9002))
    await leaves.disconnect()

    update = await receive_until(stays, lambda f: "catalog" not in f["services"])
    assert set(update["services"]) == {"frontend"}
    instance = await database_sync_to_async(Instance.objects.get)(proxy_id="catalog-1")
    assert not instance.connected
    await stays.disconnect()


async def test_acks_and_nacks_are_recorded_as_sync_state(meshui_settings: Any) -> None:
    communicator = sidecar("frontend")
    endpoints = await register(communicator, hello("frontend-1", "frontend"))
    version = endpoints["version"]

    def sync_state() -> str:
        client = Client()
        meshui_settings.MESHUI_PUBLIC_READ = True
        (row,) = client.get("/api/v1/instances").json()["instances"]
        return row["sync"]

    # Sent, not acknowledged yet, within MESHUI_SYNC_TIMEOUT.
    assert await database_sync_to_async(sync_state)() == SyncState.PENDING
    await communicator.send_json_to({"type": "nack", "kind": "endpoints", "version": version,
                                     "reason": "no route to inventory"})
    await until(lambda: sync_state() == SyncState.NACKED)
    instance = await database_sync_to_async(Instance.objects.get)(proxy_id="frontend-1")
    assert instance.last_nack_reason == "no route to inventory"
    assert instance.endpoints_nacked == version

    await communicator.send_json_to({"type": "ack", "kind": "endpoints", "version": version})
    await until(lambda: sync_state() == SyncState.SYNCED)
    instance = await database_sync_to_async(Instance.objects.get)(proxy_id="frontend-1")
    assert instance.endpoints_acked == version and instance.endpoints_acked_at is not None
    await communicator.disconnect()


async def test_a_heartbeat_updates_last_seen(meshui_settings: Any) -> None:
    communicator = sidecar("frontend")
    await register(communicator, hello("frontend-1", "frontend"))
    old = timezone.now() - timedelta(seconds=10)
    await database_sync_to_async(Instance.objects.update)(last_seen=old)
    await communicator.send_json_to({"type": "heartbeat", "state": {"endpoints_version": 1}})
    await until(lambda: Instance.objects.get(proxy_id="frontend-1").last_seen > old)
    await communicator.disconnect()


@pytest.mark.parametrize(("frame", "reason"), [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "a frame must be a JSON object with a string 'type'"),
    ('{"type": "teleport"}', "unknown frame type 'teleport'"),
    ('{"type": "hello", "service": "x", "address": "a:1"}', "'proxy_id' must be"),
    ('{"type": "ack", "kind": "endpoints", "version": "seven"}', "'version' must be an integer"),
])
async def test_a_malformed_frame_gets_an_error_and_keeps_the_connection(
    meshui_settings: Any, frame: str, reason: str
) -> None:
    communicator = sidecar("frontend")
    await register(communicator, hello("frontend-1", "frontend"))
    await communicator.send_to(text_data=frame)
    error = await receive(communicator)
    assert error["type"] == "error"
    assert reason in error["reason"]
    # Still open and still answering.
    await communicator.send_to(text_data="{}")
    assert (await receive(communicator))["type"] == "error"
    await communicator.disconnect()


async def test_frames_before_hello_are_an_error(meshui_settings: Any) -> None:
    communicator = sidecar("catalog")
    await communicator.connect()
    await communicator.send_json_to({"type": "heartbeat", "state": {}})
    assert (await receive(communicator)) == {
        "type": "error", "code": "hello_first", "reason": "send hello before heartbeat"}
    await communicator.disconnect()


async def test_the_stale_sweep_drops_silent_instances_and_broadcasts(
    meshui_settings: Any
) -> None:
    quiet, chatty = sidecar("catalog"), sidecar("frontend")
    await register(quiet, hello("catalog-1", "catalog", port=9002))
    await register(chatty, hello("frontend-1", "frontend"))
    silent_since = timezone.now() - timedelta(seconds=16)  # more than 3 x 5 s
    await database_sync_to_async(
        Instance.objects.filter(proxy_id="catalog-1").update)(last_seen=silent_since)

    swept = await database_sync_to_async(sweep_stale_instances)()
    assert swept == ["catalog-1"]
    update = await receive_until(chatty, lambda f: "catalog" not in f["services"])
    assert set(update["services"]) == {"frontend"}
    # Idempotent: a second run finds nothing to do.
    assert await database_sync_to_async(sweep_stale_instances)() == []
    # The silent one speaks again: its heartbeat revives it and everybody hears of it.
    await quiet.send_json_to({"type": "heartbeat", "state": {}})
    update = await receive_until(chatty, lambda f: "catalog" in f["services"])
    assert [e["instance"] for e in update["services"]["catalog"]] == ["catalog-1"]
    assert (await database_sync_to_async(Instance.objects.get)(proxy_id="catalog-1")).connected
    await quiet.disconnect()
    await chatty.disconnect()


async def test_the_services_api_lists_instances_and_live_versions(meshui_settings: Any) -> None:
    one, two = sidecar("reviews"), sidecar("reviews")
    await register(one, hello("reviews-1", "reviews", "v1"))
    await register(two, hello("reviews-2", "reviews", "v2", port=9002))
    meshui_settings.MESHUI_PUBLIC_READ = True

    body = await database_sync_to_async(lambda: Client().get("/api/v1/services").json())()
    (service,) = body["services"]
    assert service["name"] == "reviews"
    assert service["versions"] == ["v1", "v2"]
    assert service["live_instances"] == 2
    assert [i["proxy_id"] for i in service["instances"]] == ["reviews-1", "reviews-2"]
    await one.disconnect()
    await two.disconnect()
