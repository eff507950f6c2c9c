"""The keep relay: traces marked meshui.keep are named, once, to meshui's control-channel group."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer

from collector.keeprelay import KeepRelay, KeepRelayConfig
from collector.stats import CollectorStats
from tests.clock import FakeClock
from tests.collector.support import ahttp, running_collector
from tests.collector.trace_build import CLIENT, S, batch, export, trace_id


async def test_a_collector_names_a_kept_trace_to_the_proxies_group_once(redis_url: str) -> None:
    listener = RedisChannelLayer(hosts=[{"address": redis_url, "max_connections": 20}], prefix="meshui:asgi")
    channel = await listener.new_channel()
    await listener.group_add("proxies", channel)
    try:
        async with running_collector(redis_url) as collector:
            url = f"http://127.0.0.1:{collector.port}/v1/traces"
            body = export(
                S("catalog", trace=1, span=1, kind=CLIENT, attributes={"meshui.keep": True}),
                S("catalog", trace=2, span=2),  # not marked: not relayed
            ).SerializeToString()
            status, _, _ = await ahttp("POST", url, body, {"content-type": "application/x-protobuf"})
            assert status == 200

            message = await asyncio.wait_for(listener.receive(channel), 10)
            assert message == {"type": "traces.keep", "trace_ids": [trace_id(1).hex()]}

            # The sidecars' answers carry meshui.keep too: trace 1 is not named again. Trace 3,
            # sent after them (in OTLP/JSON), is the next and only id of the next message.
            again = export(S("inventory", trace=1, span=3, attributes={"meshui.keep": True}))
            await ahttp("POST", url, again.SerializeToString(), {"content-type": "application/x-protobuf"})
            json_body = json.dumps({"resourceSpans": [{
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
                "scopeSpans": [{"spans": [{
                    "traceId": trace_id(3).hex(), "spanId": "00000000000000aa", "name": "GET /",
                    "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2",
                    "attributes": [{"key": "meshui.keep", "value": {"boolValue": True}}]}]}]}]})
            await ahttp("POST", url, json_body.encode(), {"content-type": "application/json"})

            message = await asyncio.wait_for(listener.receive(channel), 10)
            assert message["trace_ids"] == [trace_id(3).hex()]
            assert collector.stats.keep_relayed_traces == 2
            assert collector.stats.as_dict()["keep_relay"]["messages"] == 2
            assert "meshui_collector_keep_relayed_traces_total 2\n" in collector.stats.prometheus()
    finally:
        await listener.close_pools()


class Layer:
    """A channel layer that records group messages (or fails, when told to)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.failing = False

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if self.failing:
            raise ConnectionError("layer down")
        self.sent.append((group, message))


def keep(*traces: int) -> Any:
    return batch(*(S("svc", trace=t, span=t, attributes={"meshui.keep": True}) for t in traces))


async def test_ids_go_out_at_most_256_a_message_and_a_full_backlog_drops_and_counts() -> None:
    layer, stats = Layer(), CollectorStats()
    relay = KeepRelay(layer, KeepRelayConfig(max_pending=300), stats)
    relay.consume(keep(*range(400)))

    assert await relay.tick() == 300
    assert [len(m["trace_ids"]) for _, m in layer.sent] == [256, 44]
    assert {group for group, _ in layer.sent} == {"proxies"}
    assert stats.keep_relay_dropped == 100 and stats.keep_relayed_traces == 300
    assert await relay.tick() == 0  # nothing pending: nothing sent


async def test_a_trace_is_remembered_for_a_while_then_may_be_relayed_again() -> None:
    layer, clock = Layer(), FakeClock()
    relay = KeepRelay(layer, KeepRelayConfig(remember_s=60), clock=clock)
    relay.consume(keep(1))
    await relay.tick()
    clock.advance(59)
    relay.consume(keep(1))
    assert await relay.tick() == 0
    clock.advance(2)
    await relay.tick()  # forgets what is past remember_s
    relay.consume(keep(1))
    assert await relay.tick() == 1


async def test_a_failing_channel_layer_loses_those_ids_and_counts_them() -> None:
    layer, stats = Layer(), CollectorStats()
    relay = KeepRelay(layer, stats=stats)
    layer.failing = True
    relay.consume(keep(1, 2))

    assert await relay.tick() == 0
    assert stats.keep_relay_errors == 1 and stats.keep_relay_dropped == 2
    layer.failing = False
    relay.consume(keep(3))
    assert await relay.tick() == 1


def test_bad_settings_name_their_key() -> None:
    from collector.errors import ConfigError

    with pytest.raises(ConfigError, match="keep_relay.interval_s"):
        KeepRelayConfig(interval_s=0).validate()
    with pytest.raises(ConfigError, match="keep_relay.group"):
        KeepRelayConfig(group="").validate()
