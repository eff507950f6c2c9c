"""The ``endpoints`` state every sidecar receives, and how a change reaches them all.

A change to the set of live instances is: commit it to the database, INCR the version in
Redis (shared by every ASGI process and the Celery workers), read the snapshot, send it to
the ``proxies`` group. A snapshot is read after its version was taken, so the highest
version always reflects every committed change; consumers drop versions older than the
one they last sent, so out-of-order delivery is harmless.

Issue 6: the message is built only from rows the sidecar's own validator accepts
(``validate_services``; a row that fails is left out, logged and counted), and its encoded
size is bounded below the sidecar's frame limit: a mesh that outgrows it gets an ERROR log
and the status ``too_large`` (``endpoints_status``), and nothing is sent, so the sidecars
keep their last good set instead of disconnecting on a frame they would refuse.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from typing_extensions import TypedDict  # pydantic reads these (API schemas) only on 3.12+

from meshui.broadcast import PROXIES_GROUP, abroadcast, broadcast
from meshui.redis_clients import get_async_redis, get_redis
from meshui.registry.models import Instance
from meshui.registry.settle import current_hold
from proxies.mesh.endpoints import EndpointsError, validate_services
from proxies.mesh.schema import CONTROL_FRAME_MAX_BYTES, ENDPOINTS_MAX_BYTES

logger = logging.getLogger(__name__)

VERSION_KEY = "meshui:endpoints:version"
STATUS_KEY = "meshui:endpoints:status"

OK = "ok"
TOO_LARGE = "too_large"


class EndpointJSON(TypedDict):
    instance: str
    version: str
    address: str


class EndpointsStatus(TypedDict):
    """The last endpoints publish (docs/control-channel.md): sent (``ok``) or ``too_large``."""

    state: str
    version: int
    bytes: int
    limit: int
    services: int
    instances: int
    skipped: list[str]  # proxy ids left out: the sidecars' validator would refuse them
    reason: str  # why nothing was sent ("" when ok)
    at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class EndpointsBuild:
    """One endpoints message: its frame text (None when too large) and what went into it."""

    frame: str | None
    size: int
    services: dict[str, list[EndpointJSON]]
    skipped: tuple[str, ...]  # proxy ids of rows the sidecar's validator would refuse

    @property
    def instances(self) -> int:
        return sum(len(rows) for rows in self.services.values())


def build_endpoints(version: int, rows: list[tuple[str, str, str, str]], limit: int
                    ) -> EndpointsBuild:
    """Rows ``(service, proxy_id, version, address)`` -> the ``endpoints`` frame, bounded."""
    services: dict[str, list[EndpointJSON]] = {}
    skipped = []
    for service, proxy_id, inst_version, address in rows:
        spec: EndpointJSON = {"instance": proxy_id, "version": inst_version, "address": address}
        try:
            validate_services({service: [spec]})  # the sidecar's own check, row by row
        except EndpointsError:
            skipped.append(proxy_id)
            continue
        services.setdefault(service, []).append(spec)
    frame = json.dumps({"type": "endpoints", "version": version, "services": services},
                       separators=(",", ":"))
    size = len(frame.encode())
    return EndpointsBuild(frame if size <= limit else None, size, services, tuple(skipped))


def endpoint_rows(now: datetime | None = None) -> list[tuple[str, str, str, str]]:
    """The live instances as ``(service, proxy_id, version, address)``, by service then id."""
    return [(i.service.name, i.proxy_id, i.version, i.address)
            for i in Instance.objects.for_endpoints(now)]


def endpoints_snapshot(now: datetime | None = None) -> dict[str, list[EndpointJSON]]:
    """``{service: [{instance, version, address}]}`` of the live instances."""
    return build_endpoints(0, endpoint_rows(now), CONTROL_FRAME_MAX_BYTES).services


def max_bytes() -> int:
    return min(int(settings.MESHUI_CONTROL_ENDPOINTS_MAX_BYTES), ENDPOINTS_MAX_BYTES)


def _status(version: int, build: EndpointsBuild, limit: int) -> EndpointsStatus:
    state = OK if build.frame is not None else TOO_LARGE
    reason = "" if state == OK else (
        f"the endpoints message ({build.size} bytes, {build.instances} instances) is larger "
        f"than {limit} bytes; not sent, the sidecars keep their last good set")
    return {"state": state, "version": version, "bytes": build.size, "limit": limit,
            "services": len(build.services), "instances": build.instances,
            "skipped": list(build.skipped), "reason": reason, "at": time.time()}


def _report(status: EndpointsStatus, build: EndpointsBuild) -> None:
    if build.skipped:
        logger.warning("endpoints version %s: left out %d instance(s) the sidecars would "
                       "refuse: %s", status["version"], len(build.skipped),
                       ", ".join(build.skipped[:10]))
    if build.frame is None:
        logger.error("endpoints version %s: %s", status["version"], status["reason"])


def _prepare(version: int) -> tuple[EndpointsBuild, EndpointsStatus]:
    limit = max_bytes()
    build = build_endpoints(version, endpoint_rows(), limit)
    status = _status(version, build, limit)
    _report(status, build)
    return build, status


def changed_message(version: int, frame: str) -> dict[str, Any]:
    """The group message; the consumer sends ``frame`` as the sidecar's ``endpoints``."""
    return {"type": "endpoints.changed", "version": version, "frame": frame}


class _InFlight:
    """One event loop's publish in progress, and whether another was asked for meanwhile."""

    running = False
    again = False


_in_flight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _InFlight] = (
    weakref.WeakKeyDictionary())


async def apublish_endpoints() -> int | None:
    """Bump the version and send the new snapshot to every connected sidecar.

    Single flight with a trailing run: a publish asked for while one is in progress in this
    process is folded into one more run after it, which reads a snapshot holding both
    changes. A storm of N hellos then sends a few whole snapshots, not N, each to all N
    sidecars (N^2 messages overflowed the channel layer's per-channel capacity, which drops
    silently: pitfalls.md). Returns the version sent, or None when nothing was sent (folded
    into a run in progress, held after a restart, or too large).
    """
    state = _in_flight.setdefault(asyncio.get_running_loop(), _InFlight())
    if state.running:
        state.again = True
        return None
    state.running = True
    try:
        while True:
            state.again = False
            version = await _publish_once()
            if not state.again:
                return version
    finally:
        state.running = False


async def _publish_once() -> int | None:
    if not await current_hold().admits_push(apublish_endpoints):
        return None
    version = int(await get_async_redis().incr(VERSION_KEY))
    build, status = await database_sync_to_async(_prepare)(version)
    await get_async_redis().set(STATUS_KEY, json.dumps(status))
    if build.frame is None:
        return None
    await abroadcast(PROXIES_GROUP, changed_message(version, build.frame))
    return version


def publish_endpoints() -> int | None:
    """``apublish_endpoints`` for synchronous callers (the stale sweep, which checks the
    restart hold itself)."""
    version = int(get_redis().incr(VERSION_KEY))
    build, status = _prepare(version)
    get_redis().set(STATUS_KEY, json.dumps(status))
    if build.frame is None:
        return None
    broadcast(PROXIES_GROUP, changed_message(version, build.frame))
    return version


def _version(value: bytes | str | None) -> int | None:
    return None if value is None else int(value)


def _parsed_status(value: bytes | str | None) -> EndpointsStatus | None:
    return None if value is None else json.loads(value)


def published_at(status: EndpointsStatus | None) -> datetime | None:
    """When the last endpoints publish went out (None before the first, or when too large)."""
    if status is None or status["state"] != OK:
        return None
    return datetime.fromtimestamp(status["at"], UTC)


def current_version() -> int | None:
    """The latest endpoints version, or None before any sidecar ever connected."""
    return _version(get_redis().get(VERSION_KEY))


def endpoints_status() -> EndpointsStatus | None:
    """The last publish's outcome (``state`` ok / too_large, sizes, skipped rows), or None."""
    return _parsed_status(get_redis().get(STATUS_KEY))


async def acurrent_version() -> int | None:
    """``current_version`` for async callers (the instances endpoint)."""
    return _version(await get_async_redis().get(VERSION_KEY))


async def aendpoints_status() -> EndpointsStatus | None:
    """``endpoints_status`` for async callers (the instances endpoint)."""
    return _parsed_status(await get_async_redis().get(STATUS_KEY))
