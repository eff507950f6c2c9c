"""How a policy revision reaches the sidecars: after its commit to all, after hello to one.

The ``config`` frame carries the whole document (state of the world, as xDS): a sidecar
that missed one revision is whole again with the next. The group message carries the frame
text once; each control consumer sends it to its sidecar unless it already sent that
revision or a newer one (docs/control-channel.md, "The config message").
"""

from __future__ import annotations

import json
from typing import Any

from meshui.broadcast import PROXIES_GROUP, broadcast
from meshui.policy.models import Revision
from meshui.redis_clients import get_async_redis, get_redis


def config_frame(revision: Revision) -> str:
    return json.dumps({"type": "config", "revision": revision.number,
                       "policy": revision.document}, separators=(",", ":"))


def changed_message(number: int, frame: str) -> dict[str, Any]:
    """The group message; the consumer's ``config_changed`` sends ``frame`` as it is."""
    return {"type": "config.changed", "revision": number, "frame": frame}


# The newest revision published and its frame, for the consumers' heartbeat check: the channel
# layer drops a message to a full channel without a word (pitfalls.md), so a sidecar whose
# copy was lost is sent the newest revision at its next heartbeat instead of waiting for the
# next one. The frame is kept beside the number so that the repair, and the heartbeats that
# simply arrive while a push is still fanning out, cost a Redis read, not a database query.
PUBLISHED_KEY = "meshui:policy:published"


def publish(revision: Revision) -> None:
    """Send ``revision`` to every connected sidecar (call it after the commit)."""
    frame = config_frame(revision)
    get_redis().hset(PUBLISHED_KEY, mapping={"revision": revision.number, "frame": frame})
    broadcast(PROXIES_GROUP, changed_message(revision.number, frame))


async def alatest_published() -> int:
    """The newest revision published (0 before any)."""
    value = await get_async_redis().hget(PUBLISHED_KEY, "revision")
    return 0 if value is None else int(value)


async def apublished_config() -> tuple[int, str] | None:
    """The newest revision published and its frame (None before any)."""
    number, frame = await get_async_redis().hmget(PUBLISHED_KEY, ["revision", "frame"])
    if number is None or frame is None:
        return None
    return int(number), frame.decode() if isinstance(frame, bytes) else frame


def current_config() -> tuple[int, str] | None:
    """The current revision's number and frame, for a sidecar that just said hello."""
    current = Revision.objects.current()
    return None if current is None else (current.number, config_frame(current))
