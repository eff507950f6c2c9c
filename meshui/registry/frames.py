"""The control-channel frames a sidecar sends, parsed and validated (docs/control-channel.md).

Pure functions: a frame dict in, a frozen dataclass out, or ``FrameError`` whose message
names the offending field (it goes back to the sidecar as ``{type: error, reason}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class FrameError(ValueError):
    """A frame meshui cannot understand; the connection stays open."""


@dataclass(frozen=True, slots=True)
class Hello:
    proxy_id: str
    service: str
    version: str
    address: str
    admin: str
    pid: int | None
    sidecar_version: str


@dataclass(frozen=True, slots=True)
class Ack:
    kind: str
    version: int


@dataclass(frozen=True, slots=True)
class Nack:
    kind: str
    version: int
    reason: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    state: dict[str, Any]


Frame = Hello | Ack | Nack | Heartbeat
KINDS = ("endpoints", "config")


def _str(frame: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = frame.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise FrameError(f"{frame.get('type')}: '{name}' must be a non-empty string")
    return value


def _int(frame: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = frame.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise FrameError(f"{frame.get('type')}: '{name}' must be an integer")
    return value


def _kind(frame: dict[str, Any]) -> str:
    kind = frame.get("kind")
    if kind not in KINDS:
        raise FrameError(f"{frame.get('type')}: 'kind' must be one of {', '.join(KINDS)}")
    return kind


def parse_frame(text: str | None) -> Frame:
    """Decode one text frame into its dataclass."""
    if text is None:
        raise FrameError("binary frames are not supported; send JSON text frames")
    try:
        frame = json.loads(text)
    except ValueError as exc:
        raise FrameError(f"invalid JSON: {exc}") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("a frame must be a JSON object with a string 'type'")
    kind = frame["type"]
    if kind == "hello":
        return Hello(
            proxy_id=_str(frame, "proxy_id"),
            service=_str(frame, "service"),
            version=_str(frame, "version", required=False),
            address=_str(frame, "address"),
            admin=_str(frame, "admin", required=False),
            pid=_int(frame, "pid", required=False),
            sidecar_version=_str(frame, "sidecar_version", required=False),
        )
    if kind == "ack":
        return Ack(kind=_kind(frame), version=_int(frame, "version"))  # type: ignore[arg-type]
    if kind == "nack":
        return Nack(
            kind=_kind(frame),
            version=_int(frame, "version"),  # type: ignore[arg-type]
            reason=_str(frame, "reason", required=False) or "(no reason given)",
        )
    if kind == "heartbeat":
        state = frame.get("state", {})
        if not isinstance(state, dict):
            raise FrameError("heartbeat: 'state' must be an object")
        return Heartbeat(state=state)
    raise FrameError(f"unknown frame type {kind!r}")
