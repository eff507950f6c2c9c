"""The ``endpoints`` state every sidecar receives, and how a change reaches them all.

A change to the set of live instances is: commit it to the database, INCR the version in
Redis (shared by every ASGI process and the Celery workers), read the snapshot, send it to
the ``proxies`` group. A snapshot is read after its version was taken, so the highest
version always reflects every committed change; consumers drop versions older than the
one they last sent, so out-of-order delivery is harmless.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from channels.db import database_sync_to_async

from meshui.broadcast import PROXIES_GROUP, abroadcast, broadcast
from meshui.redis import get_async_redis, get_redis
from meshui.registry.models import Instance

VERSION_KEY = "meshui:endpoints:version"


class EndpointJSON(TypedDict):
    instance: str
    version: str
    address: str


def endpoints_snapshot(now: datetime | None = None) -> dict[str, list[EndpointJSON]]:
    """``{service: [{instance, version, address}]}`` of the live instances."""
    services: dict[str, list[EndpointJSON]] = {}
    for instance in Instance.objects.for_endpoints(now):
        services.setdefault(instance.service.name, []).append(
            {"instance": instance.proxy_id, "version": instance.version,
             "address": instance.address}
        )
    return services


def changed_message(version: int, services: dict[str, list[EndpointJSON]]) -> dict[str, Any]:
    """The group message; the consumer turns it into the sidecar's ``endpoints`` frame."""
    return {"type": "endpoints.changed", "version": version, "services": services}


async def apublish_endpoints() -> int:
    """Bump the version and send the new snapshot to every connected sidecar."""
    version = int(await get_async_redis().incr(VERSION_KEY))
    services = await database_sync_to_async(endpoints_snapshot)()
    await abroadcast(PROXIES_GROUP, changed_message(version, services))
    return version


def publish_endpoints() -> int:
    """``apublish_endpoints`` for synchronous callers (the stale sweep)."""
    version = int(get_redis().incr(VERSION_KEY))
    broadcast(PROXIES_GROUP, changed_message(version, endpoints_snapshot()))
    return version


def current_version() -> int | None:
    """The latest endpoints version, or None before any sidecar ever connected."""
    value = get_redis().get(VERSION_KEY)
    return None if value is None else int(value)
