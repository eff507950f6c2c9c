"""The live publisher sends the graph to the channel-layer group when it changes."""

from __future__ import annotations

import asyncio

import redis.asyncio as aredis
from channels_redis.core import RedisChannelLayer

from collector import graphstore, graphwriter
from collector.publisher import LAST_KEY, LOCK_KEY, LivePublisher, LivePublisherConfig
from tests.clock import FakeClock


async def test_it_publishes_on_change_and_not_when_nothing_changed(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url)
    layer = RedisChannelLayer(hosts=[{"address": redis_url, "max_connections": 20}], prefix="meshui:asgi")
    listener = RedisChannelLayer(hosts=[{"address": redis_url, "max_connections": 20}], prefix="meshui:asgi")
    channel = await listener.new_channel()
    await listener.group_add("graph", channel)
    clock = FakeClock(1_800_000_000.0)
    publisher = LivePublisher(client, layer, LivePublisherConfig(heartbeat_s=5.0), clock=clock)
    writer = graphwriter.GraphWriter(clock=clock)

    async def tick() -> bool:
        await client.delete(LOCK_KEY)  # as if the last round's lock had expired
        return await publisher.tick()

    try:
        writer.add_edge("web", "api", 3, 1, {40: 3})
        await writer.aflush(client)
        assert await tick() is True
        message = await asyncio.wait_for(listener.receive(channel), 5)
        assert message["type"] == "graph.update"
        assert [
            (e["source"], e["target"], e["requests"], e["errors"]) for e in message["graph"]["edges"]
        ] == [("web", "api", 3, 1)]

        # Same graph, within the heartbeat: the round takes the lock but sends nothing.
        clock.advance(1.0)
        assert await tick() is False
        assert await client.pttl(LOCK_KEY) > 0
        assert publisher.stats.publishes == 1

        writer.add_edge("web", "api", 2, 0, {40: 2})
        await writer.aflush(client)
        assert await tick() is True
        message = await asyncio.wait_for(listener.receive(channel), 5)
        assert message["graph"]["edges"][0]["requests"] == 5

        clock.advance(5.0)  # nothing changed, but the heartbeat is due
        assert await tick() is True
        assert publisher.stats.publishes == 3
    finally:
        await layer.close_pools()
        await listener.close_pools()
        await client.aclose()


async def test_a_scan_of_graph_hashes_never_meets_the_publishers_keys(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url)

    class Layer:
        async def group_send(self, group: str, message: object) -> None:
            return None

    writer = graphwriter.GraphWriter()
    try:
        writer.add_edge("web", "api", 1, 0, {40: 1})
        await writer.aflush(client)
        assert await LivePublisher(client, Layer()).tick() is True
        assert await client.exists(LOCK_KEY, LAST_KEY) == 2
        keys = [key async for key in client.scan_iter(f"{graphstore.KEY_PREFIX}*")]
        assert keys and all(key.decode().removeprefix(graphstore.KEY_PREFIX).isdigit() for key in keys)
    finally:
        await client.aclose()


async def test_only_the_lock_holder_publishes(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url)
    sent: list[object] = []

    class Layer:
        async def group_send(self, group: str, message: object) -> None:
            sent.append(message)

    publisher = LivePublisher(client, Layer(), LivePublisherConfig())
    try:
        await client.set(LOCK_KEY, b"other", px=5000)  # another collector holds it
        assert await publisher.tick() is False
        await client.delete(LOCK_KEY)
        assert await publisher.tick() is True
        assert len(sent) == 1
    finally:
        await client.aclose()
