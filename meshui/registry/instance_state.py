"""The sidecars' last good heartbeat state, kept in Redis for 3 heartbeat intervals.

Two shapes, so each reader takes one or two keys (docs/control-channel.md):

- ``meshui:instance:<proxy_id>``: the sidecar's own report (identity counters and what it
  says about every service it calls), JSON with ``at``, expiring 3 intervals after it was
  written;
- ``meshui:callers:<service>``: a hash, one field per sidecar that calls ``service``: its
  report of that service's instances (instance_views.CallerEntry). The hash expires 3
  intervals after its last write; a field older than that is skipped on read (its writer
  vanished without a disconnect, e.g. meshui itself crashed) and overwritten or removed by
  the next report of its sidecar.

A report is written only once it passed validation (heartbeats.py): a bad one changes
nothing, so what is shown stays the last good state until it expires. A sidecar that
disconnects is removed from both at once. Every Redis error is one of
``DATA_SOURCE_ERRORS`` for the caller to handle.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from django.conf import settings

from meshui.redis_clients import get_async_redis, get_redis
from meshui.registry.heartbeats import StateReport, UpstreamReport
from meshui.registry.instance_views import CallerEntry, StoredUpstream, fresh

OWN_PREFIX = "meshui:instance:"
CALLERS_PREFIX = "meshui:callers:"


class OwnState(TypedDict):
    """``meshui:instance:<proxy_id>``: what a sidecar said about itself, and when."""

    at: float
    service: str
    endpoints_version: int | None
    config_revision: int | None
    requests_total: int | None
    telemetry_dropped: int | None
    uptime_s: float | None
    upstreams: list[StoredUpstream]
    upstreams_truncated: int
    upstreams_interval_s: float | None


def stale_s() -> float:
    """How long a report counts: 3 heartbeat intervals, as for an instance's liveness."""
    return 3.0 * settings.MESHUI_HEARTBEAT_INTERVAL


def _upstream(upstream: UpstreamReport) -> StoredUpstream:
    return {
        "service": upstream.service,
        "overflow": dict(upstream.overflow),
        "endpoints": [
            {"instance": e.instance, "requests": e.requests, "requests_total": e.requests_total,
             "ewma_ms": e.ewma_ms, "outstanding": e.outstanding, "ejected": e.ejected,
             "until": e.until, "overflow": e.overflow}
            for e in upstream.endpoints
        ],
    }


def own_state(service: str, report: StateReport, at: float) -> OwnState:
    return {
        "at": at, "service": service,
        "endpoints_version": report.endpoints_version, "config_revision": report.config_revision,
        "requests_total": report.requests_total, "telemetry_dropped": report.telemetry_dropped,
        "uptime_s": report.uptime_s, "upstreams": [_upstream(u) for u in report.upstreams],
        "upstreams_truncated": report.upstreams_truncated,
        "upstreams_interval_s": report.upstreams_interval_s,
    }


async def areport(proxy_id: str, service: str, report: StateReport, at: float,
                  before: Iterable[str] = ()) -> frozenset[str]:
    """Keep ``report`` of ``proxy_id`` (a sidecar of ``service``); ``before`` names the services
    its previous report listed, whose entries it no longer has are removed. Returns the
    services this report lists (the next call's ``before``)."""
    ttl_ms = int(stale_s() * 1000)
    state = own_state(service, report, at)
    pipe = get_async_redis().pipeline(transaction=False)
    pipe.set(OWN_PREFIX + proxy_id, json.dumps(state, separators=(",", ":")), px=ttl_ms)
    listed = frozenset(u.service for u in report.upstreams)
    for upstream in state["upstreams"]:
        entry: CallerEntry = {"at": at, "service": service,
                              "interval_s": report.upstreams_interval_s,
                              "overflow": upstream["overflow"], "endpoints": upstream["endpoints"]}
        key = CALLERS_PREFIX + upstream["service"]
        pipe.hset(key, proxy_id, json.dumps(entry, separators=(",", ":")))
        pipe.pexpire(key, ttl_ms)
    for gone in set(before) - listed:
        pipe.hdel(CALLERS_PREFIX + gone, proxy_id)
    await pipe.execute()
    return listed


async def aforget(proxy_id: str, services: Iterable[str]) -> None:
    """The sidecar disconnected: its reports no longer describe anything live."""
    pipe = get_async_redis().pipeline(transaction=False)
    pipe.delete(OWN_PREFIX + proxy_id)
    for service in services:
        pipe.hdel(CALLERS_PREFIX + service, proxy_id)
    await pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _own(proxy_ids: list[str], values: list[Any]) -> dict[str, OwnState]:
    return {proxy_id: json.loads(value) for proxy_id, value in zip(proxy_ids, values, strict=True)
            if value is not None}


def _callers(services: list[str], hashes: list[Mapping[Any, Any]], now: float
             ) -> dict[str, dict[str, CallerEntry]]:
    window = stale_s()
    return {service: fresh({_text(k): json.loads(v) for k, v in raw.items()}, now, window)
            for service, raw in zip(services, hashes, strict=True)}


async def aread(proxy_ids: Iterable[str], services: Iterable[str], now: float
                ) -> tuple[dict[str, OwnState], dict[str, dict[str, CallerEntry]]]:
    """The own reports of ``proxy_ids`` and the fresh caller reports of ``services``."""
    ids, names = list(proxy_ids), sorted(set(services))
    pipe = get_async_redis().pipeline(transaction=False)
    for proxy_id in ids:
        pipe.get(OWN_PREFIX + proxy_id)
    for name in names:
        pipe.hgetall(CALLERS_PREFIX + name)
    results = await pipe.execute() if ids or names else []
    return _own(ids, results[: len(ids)]), _callers(names, results[len(ids):], now)


def read(proxy_ids: Iterable[str], services: Iterable[str], now: float
         ) -> tuple[dict[str, OwnState], dict[str, dict[str, CallerEntry]]]:
    """``aread`` for synchronous callers (the graph page's first frame)."""
    ids, names = list(proxy_ids), sorted(set(services))
    pipe = get_redis().pipeline(transaction=False)
    for proxy_id in ids:
        pipe.get(OWN_PREFIX + proxy_id)
    for name in names:
        pipe.hgetall(CALLERS_PREFIX + name)
    results = pipe.execute() if ids or names else []
    return _own(ids, results[: len(ids)]), _callers(names, results[len(ids):], now)
