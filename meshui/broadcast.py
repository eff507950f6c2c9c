"""The one way meshui pushes to Channels groups, from async code and from sync code."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

GRAPH_GROUP = "graph"
PROXIES_GROUP = "proxies"
# The close code a socket gets when this server shuts down (uvicorn sends it and hands it
# to the app as the disconnect code).
SERVICE_RESTART = 1012


async def leave_group(layer: Any, group: str, channel_name: str, close_code: int) -> None:
    """Take a closed socket out of ``group``, unless the server itself is shutting down.

    A group_discard during uvicorn's shutdown stalled it (channels-redis; 2 of 3 SIGTERMs
    with control connections open, never with this rule in 4 of 4). The dead channel name
    then leaves the group by itself (channels-redis group_expiry); messages sent to it expire.
    """
    if close_code != SERVICE_RESTART:
        await layer.group_discard(group, channel_name)


async def abroadcast(group: str, message: dict[str, Any]) -> None:
    """Send ``message`` (its ``type`` names the consumer handler) to every member of ``group``.

    channels-redis drops messages to a full channel silently (pitfalls.md), so callers send
    whole states (the newest wins), never deltas that must all arrive.
    """
    layer = get_channel_layer()
    if layer is None:
        logger.warning("no channel layer configured; %s not sent to %s", message["type"], group)
        return
    await layer.group_send(group, message)


def broadcast(group: str, message: dict[str, Any]) -> None:
    """``abroadcast`` for synchronous callers (views, Celery tasks)."""
    async_to_sync(abroadcast)(group, message)
