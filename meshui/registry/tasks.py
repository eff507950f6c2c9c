"""Periodic work of the registry (scheduled by CELERY_BEAT_SCHEDULE in settings)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from meshui.redis import get_redis
from meshui.registry.endpoints import publish_endpoints
from meshui.registry.models import Instance

logger = logging.getLogger(__name__)

SWEEP_LOCK = "meshui:lock:sweep_stale_instances"


def sweep_stale() -> list[str]:
    """Mark instances whose heartbeat is older than 3 intervals disconnected.

    Returns the proxy ids it marked; broadcasts new endpoints when there were any.
    Idempotent: a second run finds nothing overdue.
    """
    now = timezone.now()
    overdue = Instance.objects.overdue(now)
    proxy_ids = sorted(overdue.values_list("proxy_id", flat=True))
    if not proxy_ids:
        return []
    # Re-check the condition in the UPDATE so a heartbeat that landed meanwhile wins.
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

