"""Revisions reach the sidecars over the control channel, and their ACKs become sync state."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.test import Client

from meshui.policy.push import PUBLISHED_KEY, changed_message
from meshui.redis_clients import get_async_redis
from tests.meshui.test_control_channel import hello, receive_until, register, sidecar
from tests.meshui.users import make_operator
from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)

CANARY = {"services": {"catalog": {"split": {"v1": 80, "v2": 20}}}}
EVEN = {"services": {"catalog": {"split": {"v1": 50, "v2": 50}}}}


def operator_client() -> Client:
    client = Client()
    client.force_login(make_operator())
    return client


def write(client: Client, document: dict[str, Any], parent: int) -> dict[str, Any]:
    response = client.post("/api/v1/policy/revisions", {"document": document, "parent": parent},
                           content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def proxies(client: Client) -> dict[str, Any]:
    response = client.get("/api/v1/proxies")
    assert response.status_code == 200
    return response.json()


def config_of(frame: dict[str, Any], revision: int) -> bool:
    return frame["type"] == "config" and frame["revision"] == revision


async def test_a_sidecar_gets_the_current_revision_right_after_welcome(meshui_settings: Any
                                                                       ) -> None:
    client = await database_sync_to_async(operator_client)()
    await database_sync_to_async(write)(client, CANARY, 0)
    communicator = sidecar("frontend")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to(hello("frontend-1", "frontend"))
    welcome = await receive_until(communicator, lambda f: True)
    assert welcome["type"] == "welcome"
    # Then the trust bundle (docs/control-channel.md), then the policy: before the
    # endpoints, so nothing routes on defaults.
    assert (await receive_until(communicator, lambda f: True))["type"] == "trust_bundle"
    config = await receive_until(communicator, lambda f: True)
    assert config == {"type": "config", "revision": 1, "policy": CANARY}
    await communicator.disconnect()


async def test_a_committed_revision_reaches_every_sidecar_and_acks_make_them_synced(
    meshui_settings: Any,
) -> None:
    client = await database_sync_to_async(operator_client)()
    sidecars = {"frontend-1": sidecar("frontend"),
                "reviews-1": sidecar("reviews", client=("10.0.0.8", 5124))}
    for proxy_id, communicator in sidecars.items():
        await register(communicator, hello(proxy_id, proxy_id.split("-")[0],
                                           port=9001 + len(proxy_id)))
    state = await database_sync_to_async(proxies)(client)
    assert state["summary"] == {"revision": 0, "synced": 0, "total": 2, "pending": 0,
                                "stale": 0, "nacked": 0}
    assert {p["config"]["state"] for p in state["proxies"]} == {"NOT_SENT"}

    await database_sync_to_async(write)(client, CANARY, 0)
    for communicator in sidecars.values():
        frame = await receive_until(communicator, lambda f: config_of(f, 1))
        assert frame["policy"] == CANARY
    pending = await database_sync_to_async(proxies)(client)
    assert pending["summary"]["pending"] == 2
    assert {p["config"]["revision_sent"] for p in pending["proxies"]} == {1}

    await sidecars["frontend-1"].send_json_to({"type": "ack", "kind": "config", "version": 1})
    await sidecars["reviews-1"].send_json_to({
        "type": "nack", "kind": "config", "version": 1,
        "reason": "services.catalog.split.v2: unknown version 'v2' of catalog"})

    def settled() -> dict[str, Any] | None:
        now = proxies(client)
        return now if now["summary"]["pending"] == 0 else None

    done = await eventually(lambda: database_sync_to_async(settled)(), timeout=10,
                            what="both answers recorded")
    assert done["summary"] == {"revision": 1, "synced": 1, "total": 2, "pending": 0,
                               "stale": 0, "nacked": 1}
    by_id = {p["proxy_id"]: p["config"] for p in done["proxies"]}
    assert by_id["frontend-1"]["state"] == "SYNCED" and by_id["frontend-1"]["revision_acked"] == 1
    assert by_id["reviews-1"]["state"] == "NACKED"
    assert by_id["reviews-1"]["revision_acked"] is None  # it keeps what it ran before
    assert by_id["reviews-1"]["nack_reason"].startswith("services.catalog.split.v2")
    for communicator in sidecars.values():
        await communicator.disconnect()


async def test_a_sidecar_that_never_acks_turns_stale_after_the_timeout(meshui_settings: Any
                                                                       ) -> None:
    meshui_settings.MESHUI_SYNC_TIMEOUT = 1
    client = await database_sync_to_async(operator_client)()
    communicator = sidecar("frontend")
    await register(communicator, hello("frontend-1", "frontend"))
    await database_sync_to_async(write)(client, CANARY, 0)
    await receive_until(communicator, lambda f: config_of(f, 1))

    def state() -> str:
        (proxy,) = proxies(client)["proxies"]
        return proxy["config"]["state"]

    assert await database_sync_to_async(state)() == "PENDING"
    await eventually(lambda: database_sync_to_async(lambda: state() == "STALE")(), timeout=10,
                     what="STALE once the timeout passed")
    await communicator.disconnect()


async def test_a_newer_revision_overtakes_and_an_older_one_is_never_sent_again(
    meshui_settings: Any,
) -> None:
    client = await database_sync_to_async(operator_client)()
    communicator = sidecar("frontend")
    await register(communicator, hello("frontend-1", "frontend"))
    await database_sync_to_async(write)(client, CANARY, 0)
    await database_sync_to_async(write)(client, EVEN, 1)
    second = await receive_until(communicator, lambda f: config_of(f, 2))
    assert second["policy"] == EVEN
    # A late delivery of revision 1's group message sends nothing: the next config frame
    # the sidecar sees is revision 3's (a consumer handles its messages in order).
    await get_channel_layer().group_send(
        "proxies", changed_message(1, '{"type":"config","revision":1,"policy":{}}'))
    await database_sync_to_async(write)(client, CANARY, 2)
    third = await receive_until(communicator, lambda f: f["type"] == "config")
    assert third["revision"] == 3
    await communicator.disconnect()


async def test_a_sidecar_whose_push_was_lost_gets_the_revision_at_its_next_heartbeat(
    meshui_settings: Any,
) -> None:
    communicator = sidecar("frontend")
    await register(communicator, hello("frontend-1", "frontend"))
    # Published (the Redis record the heartbeats compare with) but its group message lost,
    # as channels-redis drops a message to a full channel.
    frame = '{"type":"config","revision":7,"policy":{}}'
    await get_async_redis().hset(PUBLISHED_KEY, mapping={"revision": 7, "frame": frame})
    await communicator.send_json_to({"type": "heartbeat", "state": {}})
    assert await receive_until(communicator, lambda f: f["type"] == "config") == {
        "type": "config", "revision": 7, "policy": {}}
    # Sent once: the next heartbeat sends nothing, so the next frame is the group's revision 8.
    await communicator.send_json_to({"type": "heartbeat", "state": {}})
    await get_channel_layer().group_send(
        "proxies", changed_message(8, '{"type":"config","revision":8,"policy":{}}'))
    assert (await receive_until(communicator, lambda f: f["type"] == "config"))["revision"] == 8
    await communicator.disconnect()
