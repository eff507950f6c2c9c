"""Exporter: publish the live graph to the dashboard through the Channels layer.

Every ``interval_s`` the collector that wins a short Redis lock (``SET NX PX``, so several
collectors do not all publish) reads the last ``window_s`` seconds of the graph and sends
it to the ``graph`` group as ``{"type": "graph.update", "graph": ...}``, only when it
changed since the last publish (``generated_at`` aside) or ``heartbeat_s`` has passed.
Merged and throttled: channels-redis drops overflow silently (shared/notes/pitfalls.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aredis

from collector import graphstore
from collector.errors import ConfigError
from collector.redis_availability import RedisAvailability
from collector.stats import CollectorStats

log = logging.getLogger(__name__)

# Off the ``meshui:graph:`` prefix, so a SCAN of the per-second graph hashes never meets them.
LOCK_KEY = "meshui:publish:lock"
# The last publish (digest and time) is shared, so collectors taking turns at the lock
# do not each re-send the same graph.
LAST_KEY = "meshui:publish:last"


@dataclass(frozen=True, slots=True)
class LivePublisherConfig:
    group: str = "graph"
    interval_s: float = 0.5
    lock_ms: int = 450
    window_s: int = graphstore.DEFAULT_WINDOW
    heartbeat_s: float = 5.0
    # Must match the dashboard's CHANNEL_LAYERS (meshui/channel_layers.py) or nobody receives.
    channel_prefix: str = "meshui:asgi"
    max_connections: int = 100
    enabled: bool = True

    def validate(self) -> None:
        if not self.group or len(self.group) >= 100:
            raise ConfigError("publisher.group", f"must be 1..99 characters, got {self.group!r}")
        if not self.interval_s > 0:
            raise ConfigError("publisher.interval_s", f"must be > 0, got {self.interval_s}")
        if self.lock_ms < 1:
            raise ConfigError("publisher.lock_ms", f"must be >= 1, got {self.lock_ms}")
        try:
            graphstore.validate_window(self.window_s)
        except ValueError as exc:
            raise ConfigError("publisher.window_s", str(exc)) from None
        if not self.heartbeat_s > 0:
            raise ConfigError("publisher.heartbeat_s", f"must be > 0, got {self.heartbeat_s}")


def channel_layer(redis_url: str, config: LivePublisherConfig) -> Any:
    from channels_redis.core import RedisChannelLayer

    # A dict host with max_connections: redis-py 8's default pool cap of 100 makes
    # channels-redis raise MaxConnectionsError under bursts (pitfalls.md).
    return RedisChannelLayer(
        hosts=[{"address": redis_url, "max_connections": config.max_connections}],
        prefix=config.channel_prefix,
    )


def graph_digest(graph: graphstore.GraphJSON) -> str:
    """A digest of the graph that ignores when it was generated."""
    content = {key: value for key, value in graph.items() if key != "generated_at"}
    return hashlib.blake2b(orjson.dumps(content, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


class LivePublisher:
    def __init__(
        self,
        redis: Any,
        layer: Any,
        config: LivePublisherConfig | None = None,
        stats: CollectorStats | None = None,
        clock: Callable[[], float] = time.time,
        availability: RedisAvailability | None = None,
    ) -> None:
        self.config = config or LivePublisherConfig()
        self.config.validate()
        self.redis = redis
        self.layer = layer
        self.stats = stats or CollectorStats()
        self.clock = clock
        self.availability = availability or RedisAvailability(self.stats)
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> bool:
        """One publishing round; True when a graph was sent."""
        config = self.config
        try:
            locked = await self.redis.set(LOCK_KEY, b"1", nx=True, px=config.lock_ms)
        except (aredis.RedisError, OSError) as exc:
            # Taking the lock is this collector's Redis heartbeat, traffic or not.
            self.availability.failed(exc)
            raise
        self.availability.succeeded()
        if not locked:
            return False
        now = self.clock()
        graph = await graphstore.afetch_graph(self.redis, config.window_s, now)
        digest = graph_digest(graph)
        last = await self.redis.get(LAST_KEY)
        if last:
            last_digest, _, last_at = last.decode().partition(" ")
            if last_digest == digest and now - float(last_at or 0) < config.heartbeat_s:
                return False
        await self.layer.group_send(config.group, {"type": "graph.update", "graph": graph})
        await self.redis.set(LAST_KEY, f"{digest} {now}", px=int(config.heartbeat_s * 2000))
        self.stats.publishes += 1
        return True

    async def start(self) -> None:
        if self.config.enabled:
            self._task = asyncio.create_task(self._publish_forever(), name="live-publisher")

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        close = getattr(self.layer, "close_pools", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()

    async def _publish_forever(self) -> None:
        task = asyncio.current_task()
        while True:
            await asyncio.sleep(self.config.interval_s)
            try:
                await self.tick()
            except Exception as exc:  # loop boundary: Redis may be down; try next round
                self.stats.publish_errors += 1
                log.debug("live publish failed: %s", exc)
            if task is not None and task.cancelling():
                # shutdown() cancelled us during tick() and something under it swallowed the
                # CancelledError (seen: shutdown then waited out its 10 s): stop all the same.
                raise asyncio.CancelledError
