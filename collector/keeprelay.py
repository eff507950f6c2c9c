"""Connector: traces newly marked ``meshui.keep`` -> meshui -> every sidecar (tail keep, issue 9).

A sidecar that sees a request of an unsampled trace end slow or failed exports its span
with ``meshui.keep = true`` (``proxies.telemetry.tailkeep``). The other sidecars on the
trace's path hold their spans of it for a few seconds only, and only meshui can reach them
(the control channel). So this connector notes the trace ids of keep spans as they are
decoded (``TraceBatch.keep_trace_ids``) and, every ``interval_s``, sends the new ones to
meshui's control-channel group on the channel layer the live publisher uses:

    {"type": "traces.keep", "trace_ids": ["<32 hex>", ...]}    (at most 256 ids)

Each control connection turns it into an ``export_traces`` frame to its sidecar
(docs/control-channel.md). A trace is relayed once: ids are remembered for
``remember_s`` (the spans the sidecars export in answer carry ``meshui.keep`` too, and must
not be relayed again), at most ``max_remembered`` of them. Ids waiting for the next tick are
bounded by ``max_pending``; past it new ones are dropped and counted. channels-redis drops a
message to a full channel silently (shared/notes/pitfalls.md): a lost relay costs that trace
its other sidecars' spans, nothing more, so nothing is sent again.

Every sidecar gets every id: the collector does not know an unsampled trace's path (only
what reached it), and a sidecar that does not hold a trace spends a dict lookup on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.errors import ConfigError
from collector.records import TraceBatch
from collector.stats import CollectorStats
from proxies.mesh.schema import EXPORT_TRACES_MAX_IDS

log = logging.getLogger(__name__)

MESSAGE_TYPE = "traces.keep"  # meshui's ControlConsumer.traces_keep


@dataclass(frozen=True, slots=True)
class KeepRelayConfig:
    enabled: bool = True
    # meshui's control-channel group (meshui/broadcast.py PROXIES_GROUP), on the publisher's
    # channel layer (LivePublisherConfig.channel_prefix).
    group: str = "proxies"
    interval_s: float = 0.2
    max_pending: int = 4096
    remember_s: float = 60.0
    max_remembered: int = 100_000

    def validate(self) -> None:
        if not self.group or len(self.group) >= 100:
            raise ConfigError("keep_relay.group", f"must be 1..99 characters, got {self.group!r}")
        if not self.interval_s > 0:
            raise ConfigError("keep_relay.interval_s", f"must be > 0, got {self.interval_s}")
        for key, value in (("max_pending", self.max_pending), ("max_remembered", self.max_remembered)):
            if value < 1:
                raise ConfigError(f"keep_relay.{key}", f"must be >= 1, got {value}")
        if not self.remember_s > 0:
            raise ConfigError("keep_relay.remember_s", f"must be > 0, got {self.remember_s}")


class KeepRelay:
    """Keep spans' trace ids in (``consume``), one group message per tick out (``tick``)."""

    def __init__(self, layer: Any, config: KeepRelayConfig | None = None,
                 stats: CollectorStats | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or KeepRelayConfig()
        self.config.validate()
        self.layer = layer
        self.stats = stats or CollectorStats()
        self.clock = clock
        self._pending: list[bytes] = []
        self._remembered: dict[bytes, float] = {}  # trace id -> until, oldest first
        self._task: asyncio.Task[None] | None = None

    def consume(self, batch: TraceBatch) -> None:
        ids = batch.keep_trace_ids
        if not ids:
            return
        now = self.clock()
        remembered, pending, config = self._remembered, self._pending, self.config
        for trace_id in ids:
            if trace_id in remembered:
                continue
            if len(pending) >= config.max_pending:
                self.stats.keep_relay_dropped += 1
                continue
            remembered[trace_id] = now + config.remember_s
            pending.append(trace_id)
        while len(remembered) > config.max_remembered:
            del remembered[next(iter(remembered))]

    def _forget_old(self, now: float) -> None:
        remembered = self._remembered
        while remembered:
            trace_id = next(iter(remembered))
            if remembered[trace_id] > now:
                break
            del remembered[trace_id]

    async def tick(self) -> int:
        """Send what is pending (up to 256 ids a message); returns how many ids were sent."""
        self._forget_old(self.clock())
        sent = 0
        while self._pending:
            chunk = self._pending[:EXPORT_TRACES_MAX_IDS]
            del self._pending[:EXPORT_TRACES_MAX_IDS]
            try:
                await self.layer.group_send(
                    self.config.group, {"type": MESSAGE_TYPE, "trace_ids": [t.hex() for t in chunk]})
            except Exception as exc:  # the layer's Redis away: these ids are lost, counted
                self.stats.keep_relay_errors += 1
                self.stats.keep_relay_dropped += len(chunk)
                log.debug("keep relay failed: %s", exc)
                continue
            self.stats.keep_relay_messages += 1
            self.stats.keep_relayed_traces += len(chunk)
            sent += len(chunk)
        return sent

    async def start(self) -> None:
        if self.config.enabled:
            self._task = asyncio.create_task(self._relay_forever(), name="keep-relay")

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _relay_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval_s)
            try:
                await self.tick()
            except Exception:  # loop boundary: never let the relay die
                log.exception("keep relay tick failed")
