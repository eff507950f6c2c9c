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


# The newest revision published, for the consumers' heartbeat check: the channel layer drops
# a message to a full channel without a word (pitfalls.md), so a sidecar whose copy was lost
# is sent the current revision at its next heartbeat instead of waiting for the next one.
REVISION_KEY = "meshui:policy:revision"


def publish(revision: Revision) -> None:
    """Send ``revision`` to every connected sidecar (call it after the commit)."""
    get_redis().set(REVISION_KEY, revision.number)
    broadcast(PROXIES_GROUP, changed_message(revision.number, config_frame(revision)))


async def alatest_published() -> int:
    """The newest revision published (0 before any)."""
    value = await get_async_redis().get(REVISION_KEY)
    return 0 if value is None else int(value)


def current_config() -> tuple[int, str] | None:
    """The current revision's number and frame, for a sidecar that just said hello."""
    current = Revision.objects.current()
    return None if current is None else (current.number, config_frame(current))
