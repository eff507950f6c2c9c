"""The live graph socket: the current graph on connect, then every update (throttled).

When Redis (the graph store and the channel layer) is unreachable the socket stays open:
it sends ``{"type": "status", "source": "down", ...}``, tries again every ``RETRY_AFTER``
seconds, and on success sends ``{"type": "status", "source": "up"}``, re-joins the group
(a restarted Redis has forgotten it) and sends the current graph (docs/api.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from meshui.accounts.access import can_read
from meshui.broadcast import GRAPH_GROUP, leave_group
from meshui.dashboard.figure import page_payload
from meshui.dashboard.graph_view import VIEW_MAX_BYTES, GraphView, view_from_message
from meshui.dashboard.instance_graph import aread_instance_graph
from meshui.dashboard.source import DEFAULT_WINDOW, aread_graph
from meshui.dashboard.throttle import LatestThrottle
from meshui.dashboard.trust_domain import trust_domain
from meshui.redis_clients import DATA_SOURCE_ERRORS, RETRY_AFTER

logger = logging.getLogger(__name__)

# At most two messages a second per page (DESIGN.md: merged, throttled deltas).
MIN_INTERVAL = 0.5


def status_frame(source: str, detail: str = "") -> dict[str, Any]:
    """The ``status`` frame: ``source`` is "up" or "down" (then with why and when to expect news)."""
    frame: dict[str, Any] = {"type": "status", "source": source}
    if source == "down":
        frame.update(detail=detail, retry_after=RETRY_AFTER)
    return frame


class GraphConsumer(AsyncWebsocketConsumer):
    """Members of group ``graph`` receive ``{"type": "graph.update", "graph": GraphJSON}``.

    A page may send ``{"type": "view", "instances": bool, "expand": [names]}``
    (meshui.dashboard.graph_view): from then on each update it gets is the graph at the
    instance level (read afresh, with the sidecars' live state), those services expanded.
    """

    throttle: LatestThrottle[Mapping[str, Any]] | None = None
    view = GraphView()
    latest: Mapping[str, Any] | None = None  # the last graph, to redraw on a view change

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._accepted = False
        self._source = "unknown"  # what this client was last told: "up" or "down"
        self._up = asyncio.Event()
        self._recovery: asyncio.Task[None] | None = None
        self._layer_receive: Callable[[], Awaitable[dict[str, Any]]] | None = None

    # channels' dispatch loop awaits ``self.channel_receive`` and ends the consumer (closing
    # the socket) on its first exception. Hand it a receive that waits out a Redis outage.
    @property
    def channel_receive(self) -> Callable[[], Awaitable[dict[str, Any]]]:
        return self._receive_through_outages

    @channel_receive.setter
    def channel_receive(self, layer_receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self._layer_receive = layer_receive

    async def _receive_through_outages(self) -> dict[str, Any]:
        assert self._layer_receive is not None
        failures = 0
        while True:
            try:
                message = await self._layer_receive()
            except DATA_SOURCE_ERRORS:
                failures += 1
                # A connection opened to a server that has since restarted fails once even
                # though Redis answers: ask Redis itself before telling the page it is down.
                if failures > 1:
                    await asyncio.sleep(RETRY_AFTER)  # never spin on a failing receive
                if not await self._refresh():
                    await self._up.wait()  # set by the recovery task once Redis answers again
                continue
            return message

    async def connect(self) -> None:
        if not can_read(self.scope.get("user")):
            await self.close()
            return
        self.throttle = LatestThrottle(self.send_graph, MIN_INTERVAL)
        await self.accept()
        self._accepted = True
        await self._refresh()

    async def _join_and_read(self) -> Mapping[str, Any]:
        await self.channel_layer.group_add(GRAPH_GROUP, self.channel_name)
        return await aread_graph(DEFAULT_WINDOW)

    async def _refresh(self) -> bool:
        """Join the group and send the current graph; on a Redis error, report it and retry."""
        try:
            try:
                graph = await self._join_and_read()
            except DATA_SOURCE_ERRORS:
                # Pooled connections to a restarted server fail once, then reconnect.
                graph = await self._join_and_read()
        except DATA_SOURCE_ERRORS as exc:
            await self._source_down(exc)
            return False
        if self._source == "down":
            logger.info("graph socket: Redis is back")
            await self.send_json(status_frame("up"))
        self._source = "up"
        self._up.set()
        if self.throttle is not None:
            await self.throttle.submit(graph)
        return True

    async def _source_down(self, exc: BaseException) -> None:
        self._up.clear()
        if not self._accepted:
            return  # connect() will find out and tell the client
        if self._source != "down":
            logger.warning("graph socket: Redis unavailable: %s", exc)
            self._source = "down"
            await self.send_json(status_frame(
                "down", f"the live graph store (Redis) is unavailable ({type(exc).__name__})"))
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover())

    async def _recover(self) -> None:
        while True:
            await asyncio.sleep(RETRY_AFTER)  # the retry pace promised in the status frame
            if await self._refresh():
                return

    async def disconnect(self, code: int) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
        if self.throttle is not None:
            self.throttle.close()
            try:
                await leave_group(self.channel_layer, GRAPH_GROUP, self.channel_name, code)
            except DATA_SOURCE_ERRORS:
                pass  # Redis is down; the membership expires with the group's TTL

    async def graph_update(self, event: dict[str, Any]) -> None:
        if self.throttle is not None:
            await self.throttle.submit(event["graph"])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """A ``view`` message: draw the graph that way from now on, starting now."""
        try:
            if text_data is None or len(text_data) > VIEW_MAX_BYTES:
                raise ValueError(f"send a JSON text frame of at most {VIEW_MAX_BYTES} bytes")
            try:
                message = json.loads(text_data)
            except ValueError:
                raise ValueError("not JSON") from None
            self.view = view_from_message(message)
        except ValueError as exc:
            await self.send_json({"type": "error", "detail": f"view: {exc}"})
            return
        if self.throttle is not None and self.latest is not None:
            await self.throttle.submit(self.latest)

    async def send_json(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload, separators=(",", ":")))

    async def send_graph(self, graph: Mapping[str, Any]) -> None:
        self.latest = graph
        view = self.view
        if view.at_instance_level:
            try:
                graph = await aread_instance_graph(DEFAULT_WINDOW)
            except DATA_SOURCE_ERRORS as exc:
                await self._source_down(exc)
                return
        await self.send_json(page_payload(graph, expanded=view.expanded(graph),
                                         trust_domain=trust_domain()))
