"""Hostile hellos through the real control consumer (issue 6): validated, never hijacking."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from meshui.registry.frames import MAX_FRAME_BYTES, MAX_FRAME_DEPTH
from meshui.registry.models import Instance
from tests.meshui.test_control_channel import hello, receive, receive_until, register, sidecar
from tests.meshui.websocket import WebsocketCommunicator
from tests.polling import first_matching

pytestmark = pytest.mark.django_db(transaction=True)


def row(proxy_id: str) -> Instance | None:
    return Instance.objects.filter(proxy_id=proxy_id).first()


aget = database_sync_to_async(row)
count = database_sync_to_async(lambda: Instance.objects.count())


async def next_endpoints(communicator: WebsocketCommunicator) -> dict[str, Any]:
    return await receive_until(communicator, lambda f: f["type"] == "endpoints")


async def assert_no_push_since(observer: WebsocketCommunicator, version: int, port: int) -> None:
    """Nothing was published after ``version``: the first push the observer gets past it is
    ``version + 1``, caused by a new valid sidecar (which reached everybody)."""
    witness = sidecar("witness", client=("10.0.0.9", 6000))
    await register(witness, hello(f"witness-{port}", "witness", port=port))
    update = await receive_until(
        observer, lambda f: f["type"] == "endpoints" and f["version"] > version)
    assert update["version"] == version + 1
    assert "witness" in update["services"]
    await witness.disconnect()


async def closed_with(communicator: WebsocketCommunicator) -> Any:
    """The close code the consumer sent, skipping frames still queued before it."""
    output = await first_matching(communicator.receive_output,
                                  lambda output: output["type"] == "websocket.close", timeout=3)
    # As a real server does once the consumer closed: the socket is gone; let the consumer
    # finish its disconnect, so no task of it is left for the test's loop to cancel (one left
    # cancelling a database call once hung a teardown past the suite's timeout).
    await communicator.disconnect(output.get("code", 1000))
    return output.get("code")


BAD_FIELDS = [
    ("proxy_id", ""),
    ("proxy_id", "has space"),
    ("proxy_id", "x" * 201),
    ("proxy_id", 7),
    ("service", "Evil:Name"),
    ("service", "UPPER"),
    ("service", "-lead"),
    ("service", "a" * 64),
    ("service", "café"),
    ("version", "v 1"),
    ("version", "v" * 64),
    ("version", 3),
    ("address", "10.0.0.1"),
    ("address", "h:0"),
    ("address", "h:70000"),
    ("address", "h:١٢"),
    ("address", "a" * 300 + ":80"),
    ("address", "::1:80"),
    ("admin", "nope"),
    ("pid", -1),
    ("pid", 2**40),
    ("pid", "12"),
    ("sidecar_version", "x" * 65),
    ("sidecar_version", "bell\x07"),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
async def test_a_bad_hello_field_gets_an_error_naming_it_and_is_never_registered(
    meshui_settings: Any, field: str, value: Any
) -> None:
    observer = sidecar("frontend")
    first = await register(observer, hello("frontend-1", "frontend"))
    bad = sidecar("catalog", client=("10.6.6.6", 666))
    await bad.connect()
    await bad.send_json_to({**hello("catalog-1", "catalog", port=9002), field: value})

    error = await receive(bad)
    assert error["type"] == "error" and error["code"] == "bad_field"
    assert error["field"] == field and f"'{field}'" in error["reason"]
    assert len(error["reason"]) < 400  # never echoes the value back whole
    assert await count() == 1 and await aget("catalog-1") is None
    # Not registered: a heartbeat is still "hello first".
    await bad.send_json_to({"type": "heartbeat", "state": {}})
    assert (await receive(bad))["code"] == "hello_first"
    await assert_no_push_since(observer, first["version"], 9100)
    await bad.disconnect()
    await observer.disconnect()


async def test_a_hello_with_a_megabyte_address_is_refused_as_too_large(meshui_settings: Any) -> None:
    observer = sidecar("frontend")
    first = await register(observer, hello("frontend-1", "frontend"))
    bad = sidecar("catalog", client=("10.6.6.6", 666))
    await bad.connect()
    await bad.send_json_to({**hello("catalog-1", "catalog"), "address": "a" * 1_200_000 + ":80"})
    error = await receive(bad)
    assert error["code"] == "frame_too_large" and str(MAX_FRAME_BYTES) in error["reason"]
    assert await aget("catalog-1") is None
    await assert_no_push_since(observer, first["version"], 9100)
    await bad.disconnect()
    await observer.disconnect()


@pytest.mark.parametrize("text", [
    "x" * (MAX_FRAME_BYTES + 1),
    json.dumps({"type": "heartbeat", "state": {"pad": "é" * (MAX_FRAME_BYTES // 2)}}),
])
async def test_an_oversized_frame_is_an_error_and_the_connection_stays(
    meshui_settings: Any, text: str
) -> None:
    communicator = sidecar("frontend")
    await register(communicator, hello("frontend-1", "frontend"))
    await communicator.send_to(text_data=text)
    assert (await receive(communicator))["code"] == "frame_too_large"
    await communicator.send_json_to({"type": "ack", "kind": "endpoints", "version": 1})
    await communicator.send_to(text_data="{}")
    assert (await receive(communicator))["code"] == "bad_frame"  # still served
    await communicator.disconnect()


@pytest.mark.parametrize("depth", [MAX_FRAME_DEPTH, MAX_FRAME_DEPTH + 1, 20_000])
async def test_a_too_deep_frame_is_an_error(meshui_settings: Any, depth: int) -> None:
    communicator = sidecar("frontend")
    await register(communicator, hello("frontend-1", "frontend"))
    nested = "[" * (depth - 1) + "]" * (depth - 1)  # the frame object itself is level 1
    await communicator.send_to(text_data='{"type": "heartbeat", "state": {}, "x": ' + nested + "}")
    if depth <= MAX_FRAME_DEPTH:
        await communicator.send_to(text_data="{}")  # the heartbeat was accepted silently
        assert (await receive(communicator))["code"] == "bad_frame"
    else:
        error = await receive(communicator)
        assert error["code"] == "frame_too_deep" and str(MAX_FRAME_DEPTH) in error["reason"]
    await communicator.disconnect()


async def test_an_impostor_at_another_address_is_refused_and_changes_nothing(
    meshui_settings: Any
) -> None:
    observer, real = sidecar("frontend"), sidecar("catalog", client=("10.0.0.8", 5000))
    await register(observer, hello("frontend-1", "frontend"))
    mine = await register(real, hello("catalog-v1-1", "catalog", port=9002))
    await next_endpoints(observer)  # the real catalog reached the observer
    before = await aget("catalog-v1-1")

    impostor = sidecar("catalog", client=("10.6.6.6", 666))
    await impostor.connect()
    await impostor.send_json_to(
        {**hello("catalog-v1-1", "catalog", port=9002), "address": "10.6.6.6:9002"})
    error = await receive(impostor)
    assert error["code"] == "proxy_id_in_use" and error["field"] == "proxy_id"
    after = await aget("catalog-v1-1")
    assert (after.address, after.connection, after.connected, after.connected_at) == (
        before.address, before.connection, True, before.connected_at)

    # The impostor leaving does not evict the real instance either.
    await impostor.disconnect()
    assert (await aget("catalog-v1-1")).connected
    await assert_no_push_since(observer, mine["version"], 9100)
    # And the real connection still owns its row: its ack is recorded.
    await real.send_json_to({"type": "ack", "kind": "endpoints", "version": mine["version"] + 1})
    await real.send_to(text_data="{}")
    await receive_until(real, lambda f: f["type"] == "error")
    assert (await aget("catalog-v1-1")).endpoints_acked == mine["version"] + 1
    await real.disconnect()
    await observer.disconnect()


async def test_a_reconnect_from_the_same_address_takes_over_a_half_dead_connection(
    meshui_settings: Any
) -> None:
    observer, old = sidecar("frontend"), sidecar("catalog", client=("10.0.0.8", 5000))
    await register(observer, hello("frontend-1", "frontend"))
    await register(old, hello("catalog-1", "catalog", port=9002))
    before = await aget("catalog-1")

    new = sidecar("catalog", client=("10.0.0.8", 5001))  # the same sidecar, a new socket
    pushed = await register(new, hello("catalog-1", "catalog", port=9002))
    assert pushed["services"]["catalog"][0]["address"] == "127.0.0.1:9002"
    taken = await aget("catalog-1")
    assert taken.connected and taken.connection != before.connection
    # The old connection is told to go (it must not keep receiving pushes).
    assert await closed_with(old) == 4409

    # Its late close does not evict the row the new connection owns, nor push anything.
    await old.send_input({"type": "websocket.disconnect", "code": 1006})
    await old.wait(3)
    assert (await aget("catalog-1")).connected
    await assert_no_push_since(observer, pushed["version"], 9100)
    await new.disconnect()
    await observer.disconnect()


async def test_an_old_connection_s_heartbeat_and_close_after_a_takeover_change_nothing(
    meshui_settings: Any
) -> None:
    old = sidecar("catalog", client=("10.0.0.8", 5000))
    await register(old, hello("catalog-1", "catalog", port=9002))
    silent = timezone.now() - timedelta(seconds=20)  # old socket silent: not live any more
    await database_sync_to_async(Instance.objects.filter(proxy_id="catalog-1").update)(
        last_seen=silent)
    moved = sidecar("catalog", client=("10.0.0.9", 5000))  # restarted elsewhere, same proxy id
    await register(moved, {**hello("catalog-1", "catalog"), "address": "10.0.0.9:9002"})
    owner = (await aget("catalog-1")).connection

    await old.send_json_to({"type": "heartbeat", "state": {}})
    await old.send_json_to({"type": "nack", "kind": "endpoints", "version": 1, "reason": "x"})
    await old.disconnect()
    now = await aget("catalog-1")
    assert (now.connection, now.connected, now.address) == (owner, True, "10.0.0.9:9002")
    assert now.last_nack_reason == ""
    await moved.disconnect()


async def test_two_hellos_for_one_new_proxy_id_at_once_register_exactly_one(
    meshui_settings: Any
) -> None:
    one, two = sidecar("catalog", client=("10.0.0.1", 1)), sidecar("catalog", client=("10.0.0.2", 2))
    await one.connect()
    await two.connect()
    await asyncio.gather(
        one.send_json_to({**hello("catalog-1", "catalog"), "address": "10.0.0.1:9002"}),
        two.send_json_to({**hello("catalog-1", "catalog"), "address": "10.0.0.2:9002"}),
    )
    answers = [await receive(one), await receive(two)]
    kinds = sorted(a["type"] for a in answers)
    assert kinds == ["error", "welcome"], answers
    winner = "10.0.0.1:9002" if answers[0]["type"] == "welcome" else "10.0.0.2:9002"
    assert (await aget("catalog-1")).address == winner
    assert await count() == 1
    await one.disconnect()
    await two.disconnect()


async def test_a_server_restart_close_keeps_the_instance_registered(meshui_settings: Any) -> None:
    observer, leaving = sidecar("frontend"), sidecar("catalog", client=("10.0.0.8", 5000))
    await register(observer, hello("frontend-1", "frontend"))
    mine = await register(leaving, hello("catalog-1", "catalog", port=9002))
    await leaving.send_input({"type": "websocket.disconnect", "code": 1012})
    await leaving.wait(3)
    assert (await aget("catalog-1")).connected
    await assert_no_push_since(observer, mine["version"], 9100)
    await observer.disconnect()


async def test_one_connection_cannot_speak_for_a_second_proxy_id(meshui_settings: Any) -> None:
    communicator = sidecar("frontend")
    await register(communicator, hello("frontend-1", "frontend"))
    await communicator.send_json_to(hello("catalog-1", "catalog", port=9002))
    error = await receive_until(communicator, lambda f: f["type"] == "error")
    assert (error["code"], error["field"]) == ("bad_field", "proxy_id")
    assert await aget("catalog-1") is None
    await communicator.disconnect()
