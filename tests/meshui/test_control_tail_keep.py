"""Tail keep on the control channel: a collector's traces.keep becomes export_traces frames.

Over a real channel layer and Redis: the collector's keep relay sends ``traces.keep`` to the
``proxies`` group (collector/keeprelay.py); each connection whose sidecar said
``tail_keep: true`` sends its sidecar one ``export_traces`` frame, numbered per connection,
at most EXPORT_FRAMES_PER_S a second. Messages reach a consumer in order, so a config push
sent after them marks where they would have been: that is how a test sees "nothing sent".
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from channels.layers import get_channel_layer

from meshui.policy.push import changed_message
from meshui.registry import consumers
from tests.clock import FakeClock
from tests.meshui.test_control_channel import hello, receive, receive_until, register, sidecar

pytestmark = pytest.mark.django_db(transaction=True)

TRACE_A, TRACE_B = "4bf92f3577b34da6a3ce929d0e0e4736", "ab" * 16


async def keep(*trace_ids: str) -> None:
    await get_channel_layer().group_send("proxies", {"type": "traces.keep", "trace_ids": list(trace_ids)})


async def marker(revision: int) -> None:
    """A config push behind the messages before it (a consumer handles them in order)."""
    frame = f'{{"type":"config","revision":{revision},"policy":{{}}}}'
    await get_channel_layer().group_send("proxies", changed_message(revision, frame))


def export_or_config(frame: dict[str, Any]) -> bool:
    return frame["type"] in ("export_traces", "config")


async def test_sidecars_that_hold_a_ring_get_export_traces_and_the_others_do_not(
    meshui_settings: Any,
) -> None:
    ring, plain = sidecar("inventory"), sidecar("catalog")
    await register(ring, {**hello("inventory-1", "inventory"), "tail_keep": True})
    await register(plain, hello("catalog-1", "catalog", port=9002))

    await keep(TRACE_A)
    await keep(TRACE_B, TRACE_A)
    await marker(41)

    assert await receive_until(ring, export_or_config) == {
        "type": "export_traces", "id": 1, "trace_ids": [TRACE_A]}
    assert await receive_until(ring, export_or_config) == {
        "type": "export_traces", "id": 2, "trace_ids": [TRACE_B, TRACE_A]}
    assert (await receive_until(ring, export_or_config))["type"] == "config"
    assert (await receive_until(plain, export_or_config)) == {"type": "config", "revision": 41, "policy": {}}
    await ring.disconnect()
    await plain.disconnect()


async def test_a_bad_traces_keep_message_is_not_relayed(
    meshui_settings: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="meshui")
    ring = sidecar("inventory")
    await register(ring, {**hello("inventory-1", "inventory"), "tail_keep": True})

    await keep("not-a-trace-id")
    await keep(*[TRACE_A] * 257)
    await marker(42)

    assert (await receive_until(ring, export_or_config))["type"] == "config"
    assert caplog.text.count("traces.keep message with bad trace_ids") == 2
    await ring.disconnect()


async def test_export_traces_frames_are_capped_per_connection_and_the_skip_is_logged(
    meshui_settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="meshui")
    clock = FakeClock()
    monkeypatch.setattr(consumers, "_clock", clock)
    ring = sidecar("inventory")
    await register(ring, {**hello("inventory-1", "inventory"), "tail_keep": True})

    for _ in range(consumers.EXPORT_FRAMES_PER_S + 3):  # all at the same instant
        await keep(TRACE_A)
    await marker(43)
    sent = []
    while (frame := await receive_until(ring, export_or_config))["type"] == "export_traces":
        sent.append(frame["id"])

    assert sent == list(range(1, consumers.EXPORT_FRAMES_PER_S + 1))
    assert caplog.text.count("export_traces frames a second") == 1
    clock.advance(0.1)  # one frame's worth of time
    await keep(TRACE_B)
    frame = await receive_until(ring, export_or_config)
    assert frame["trace_ids"] == [TRACE_B] and frame["id"] == consumers.EXPORT_FRAMES_PER_S + 1
    await ring.disconnect()


async def test_a_nack_of_export_traces_is_logged_and_is_not_an_error(
    meshui_settings: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="meshui")
    ring = sidecar("inventory")
    await register(ring, {**hello("inventory-1", "inventory"), "tail_keep": True})

    await ring.send_json_to({"type": "nack", "kind": "export_traces", "version": 3,
                             "reason": "trace_ids: [0] must be a trace id"})
    await ring.send_json_to({"type": "heartbeat", "state": {}})
    await marker(44)

    # No error frame came back for the NACK: the next frame is the marker.
    assert (await receive_until(ring, lambda f: f["type"] in ("config", "error"))) == {
        "type": "config", "revision": 44, "policy": {}}
    assert "refused export_traces frame 3: trace_ids: [0]" in caplog.text
    await ring.disconnect()


async def test_a_hello_whose_tail_keep_is_not_a_boolean_is_refused(meshui_settings: Any) -> None:
    communicator = sidecar("inventory")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({**hello("inventory-1", "inventory"), "tail_keep": "yes"})

    error = await receive(communicator)
    assert error["type"] == "error" and error["code"] == "bad_field" and error["field"] == "tail_keep"
    await communicator.disconnect()
