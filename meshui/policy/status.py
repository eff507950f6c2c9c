"""Every sidecar's sync state for both kinds, and the mesh-wide summary (``/api/v1/proxies``)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from django.utils import timezone

from meshui.policy.models import Revision
from meshui.redis_clients import DATA_SOURCE_ERRORS
from meshui.registry.api import iso_timestamp as iso
from meshui.registry.endpoints import current_version, endpoints_status, published_at
from meshui.registry.models import Instance
from meshui.registry.sync import KindSync, SyncState


def _kind(sync: KindSync) -> dict[str, Any]:
    return {"state": sync.state, "revision_sent": sync.sent, "revision_acked": sync.acked,
            "nack_reason": sync.nack_reason, "since": iso(sync.since)}


def proxy_status(now: datetime | None = None) -> dict[str, Any]:
    """``{summary, proxies}``: per sidecar and per kind, SYNCED / PENDING / STALE / NACKED /
    NOT_SENT (registry/sync.py); the summary counts connected sidecars for the policy."""
    now = now or timezone.now()
    current = Revision.objects.current()
    revision = current.number if current else None
    # The endpoints version lives in Redis: without it the config states still hold.
    try:
        endpoints_version = current_version()
        endpoints_at = published_at(endpoints_status())
    except DATA_SOURCE_ERRORS:  # Redis down: endpoints NOT_SENT, the config states hold
        endpoints_version, endpoints_at = None, None
    proxies, counts = [], Counter[SyncState]()
    for instance in Instance.objects.for_listing():
        config = instance.config_sync(revision, current.created_at if current else None, now)
        endpoints = instance.endpoints_sync(endpoints_version, endpoints_at, now)
        if instance.connected:
            counts[config.state] += 1
        proxies.append({
            "proxy_id": instance.proxy_id, "service": instance.service.name,
            "version": instance.version, "address": instance.address,
            "connected": instance.connected, "config": _kind(config),
            "endpoints": _kind(endpoints),
        })
    summary = {"revision": revision or 0, "synced": counts[SyncState.SYNCED],
               "total": sum(counts.values()), "pending": counts[SyncState.PENDING],
               "stale": counts[SyncState.STALE], "nacked": counts[SyncState.NACKED]}
    return {"summary": summary, "proxies": proxies}
