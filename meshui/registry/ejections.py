"""Which instances the sidecars' outlier detection keeps out now, as their heartbeats say.

Each sidecar ejects on its own (as Envoy's outlier detection does, per caller), so "catalog-2
is ejected" means "these callers stopped sending to it, until then". Every heartbeat carries
the sidecar's list (``state.ejected``); meshui keeps the latest per reporting sidecar in one
Redis hash, shared by every ASGI process, and the service page reads it through
``GET /api/v1/ejections``. An entry needs no expiry of its own: each ejection ends at its
``until`` (at most the policy's max ejection time), and a reporter that disconnects is
dropped at once.
"""

from __future__ import annotations

import json
import time
from typing import Any

from meshui.redis_clients import get_async_redis
from meshui.registry.frames import Ejected

KEY = "meshui:ejections"


async def areport(proxy_id: str, ejected: tuple[Ejected, ...]) -> None:
    """``proxy_id`` keeps ``ejected`` out now (an empty report clears its entry)."""
    redis = get_async_redis()
    if not ejected:
        await redis.hdel(KEY, proxy_id)
        return
    await redis.hset(KEY, proxy_id, json.dumps(
        [{"service": e.service, "instance": e.instance, "until": e.until} for e in ejected]))


async def aforget(proxy_id: str) -> None:
    """The reporter disconnected: what it ejected no longer keeps any traffic out."""
    await get_async_redis().hdel(KEY, proxy_id)


def current(reports: dict[Any, Any], service: str | None, now: float) -> list[dict[str, Any]]:
    """Per ejected instance (of ``service``, or all): who ejected it and until when (the
    latest of them), from the raw hash; by service, then instance. Pure."""
    by_instance: dict[tuple[str, str], dict[str, Any]] = {}
    for reporter, raw in reports.items():
        reporter = reporter.decode() if isinstance(reporter, bytes) else reporter
        for entry in json.loads(raw):
            if entry["until"] <= now or (service is not None and entry["service"] != service):
                continue
            row = by_instance.setdefault((entry["service"], entry["instance"]), {
                "service": entry["service"], "instance": entry["instance"], "until": 0.0,
                "ejected_by": []})
            row["until"] = max(row["until"], entry["until"])
            row["ejected_by"].append(reporter)
    rows = [by_instance[key] for key in sorted(by_instance)]
    for row in rows:
        row["ejected_by"].sort()
    return rows


async def acurrent(service: str | None = None) -> list[dict[str, Any]]:
    """``current`` of what Redis holds now."""
    return current(await get_async_redis().hgetall(KEY), service, time.time())
