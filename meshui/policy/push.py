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


def config_frame(revision: Revision) -> str:
    return json.dumps({"type": "config", "revision": revision.number,
                       "policy": revision.document}, separators=(",", ":"))


def changed_message(number: int, frame: str) -> dict[str, Any]:
    """The group message; the consumer's ``config_changed`` sends ``frame`` as it is."""
    return {"type": "config.changed", "revision": number, "frame": frame}


def publish(revision: Revision) -> None:
    """Send ``revision`` to every connected sidecar (call it after the commit)."""
    broadcast(PROXIES_GROUP, changed_message(revision.number, config_frame(revision)))


def current_config() -> tuple[int, str] | None:
    """The current revision's number and frame, for a sidecar that just said hello."""
    current = Revision.objects.current()
    return None if current is None else (current.number, config_frame(current))
