"""Periodic work of the registry (scheduled by CELERY_BEAT_SCHEDULE in settings)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import shared_task
from django.db.models import Max
from django.utils import timezone

from meshui.redis_clients import get_redis
from meshui.registry.endpoints import publish_endpoints
from meshui.registry.models import Instance, stale_after
from meshui.registry.settle import HOLD_KEY

logger = logging.getLogger(__name__)

SWEEP_LOCK = "meshui:lock:sweep_stale_instances"


def sweep_verdict(newest_seen: datetime | None, now: datetime, stale: timedelta,
                  hold_active: bool) -> str | None:
    """Why the sweep must not run now, or None when it may. Pure.

    While an ASGI process holds its pushes after a restart (settle.py) the sweep would push
    a set without the instances still reconnecting. And when no connected instance at all
    was heard from for 3 intervals it is the control plane that was away (heartbeats had
    nowhere to go), not every sidecar at once: evicting them all would leave the restarted
    meshui nobody to wait for.
    """
    if hold_active:
        return "an ASGI process holds endpoints pushes after a restart"
    if newest_seen is not None and newest_seen < now - stale:
        return "no instance was heard from in 3 heartbeat intervals (control plane away?)"
    return None


def sweep_stale() -> list[str]:
    """Mark instances whose heartbeat is older than 3 intervals disconnected.

    Returns the proxy ids it marked; broadcasts new endpoints when there were any.
    Idempotent: a second run finds nothing overdue.
    """
    now = timezone.now()
    newest = Instance.objects.filter(connected=True).aggregate(newest=Max("last_seen"))["newest"]
    skip = sweep_verdict(newest, now, stale_after(), bool(get_redis().exists(HOLD_KEY)))
    if skip is not None:
        logger.info("stale sweep: skipped: %s", skip)
        return []
    overdue = Instance.objects.overdue(now)
    proxy_ids = sorted(overdue.values_list("proxy_id", flat=True))
    if not proxy_ids:
        return []
    # Re-check the condition in the UPDATE so a heartbeat or a takeover (both set
    # last_seen) that landed meanwhile wins.
    Instance.objects.overdue(now).filter(proxy_id__in=proxy_ids).update(connected=False)
    logger.warning("stale sweep: %d instance(s) without heartbeat: %s",
                   len(proxy_ids), ", ".join(proxy_ids))
    publish_endpoints()
    return proxy_ids


@shared_task(name="meshui.registry.tasks.sweep_stale_instances")
def sweep_stale_instances() -> list[str] | None:
    """The beat task: ``sweep_stale`` under a Redis lock so overlapping runs skip."""
    lock = get_redis().lock(SWEEP_LOCK, timeout=60, blocking=False)
    if not lock.acquire():
        logger.info("stale sweep: another run holds the lock; skipping")
        return None
    try:
        return sweep_stale()
    finally:
        try:
            lock.release()
        except Exception:  # the lock expired under a very slow run: nothing to release
            logger.exception("stale sweep: could not release the lock")

