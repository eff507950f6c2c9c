"""The live graph socket: the current graph on connect, then every update (throttled)."""

from __future__ import annotations

import json
import logging
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from collector.graphstore import afetch_graph
from meshui.access import can_read
from meshui.broadcast import GRAPH_GROUP
from meshui.dashboard.figure import page_payload
from meshui.dashboard.throttle import LatestThrottle
from meshui.redis import get_async_redis

logger = logging.getLogger(__name__)

WINDOW = 60
# At most two messages a second per page (DESIGN.md: merged, throttled deltas).
MIN_INTERVAL = 0.5


class GraphConsumer(AsyncWebsocketConsumer):
    """Members of group ``graph`` receive ``{"type": "graph.update", "graph": GraphJSON}``."""

    throttle: LatestThrottle[dict[str, Any]] | None = None

    async def connect(self) -> None:
        if not can_read(self.scope.get("user")):
            await self.close()
            return
        self.throttle = LatestThrottle(self.send_graph, MIN_INTERVAL)
        await self.channel_layer.group_add(GRAPH_GROUP, self.channel_name)
        await self.accept()
        graph = await afetch_graph(get_async_redis(), WINDOW)
        await self.throttle.submit(graph)

    async def disconnect(self, code: int) -> None:
        if self.throttle is not None:
            self.throttle.close()
            await self.channel_layer.group_discard(GRAPH_GROUP, self.channel_name)

    async def graph_update(self, event: dict[str, Any]) -> None:
        if self.throttle is not None:
            await self.throttle.submit(event["graph"])

    async def send_graph(self, graph: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(page_payload(graph), separators=(",", ":")))
