"""The alerts' periodic work (scheduled by CELERY_BEAT_SCHEDULE in settings), and sending."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task

from meshui.alerts.evaluator import Evaluator
from meshui.alerts.notify import delivery, dispatch
from meshui.alerts.window_cache import WindowCache

logger = logging.getLogger(__name__)
# What the worker process keeps of settled data from cycle to cycle.
CACHE = WindowCache()


@shared_task(name="meshui.alerts.tasks.evaluate_alerts")
def evaluate_alerts() -> dict[str, Any]:
    """The beat task: one evaluation cycle (a second run of the same cycle skips it), then
    a pass over the notification groups, so that a new firing goes out without waiting."""
    report = Evaluator(cache=CACHE).run()
    if report.skipped:
        logger.info("alerts: cycle %d skipped: %s", report.cycle, report.skipped)
    elif report.rules:
        logger.info("alerts: cycle %d: %d rules, %d targets, %d transitions in %.3f s%s",
                    report.cycle, report.rules, report.targets, report.transitions,
                    report.seconds.get("total", 0.0),
                    f"; {report.error}" if report.error else "")
    if report.ran:
        dispatch.run(time.time(), enqueue)
    return report.as_json()


def enqueue(notification_ids: list[int]) -> None:
    for notification_id in notification_ids:
        send_notification.delay(notification_id)


@shared_task(name="meshui.alerts.tasks.dispatch_notifications")
def dispatch_notifications() -> dict[str, Any]:
    """The beat task between evaluations: groups whose wait or interval is over, and
    notifications whose send was lost."""
    now = time.time()
    report = dispatch.run(now, enqueue)
    lost = [pk for pk in delivery.due(now) if pk not in report.created]
    enqueue(lost)
    return {"groups": report.groups, "created": report.created, "requeued": lost}


@shared_task(name="meshui.alerts.tasks.send_notification")
def send_notification(notification_id: int) -> str:
    """One attempt; a transient failure schedules the next after its backoff."""
    outcome = delivery.deliver(notification_id, time.time())
    if outcome.retry_in is not None:
        send_notification.apply_async((notification_id,), countdown=outcome.retry_in)
    if outcome.result is not None and not outcome.result.ok:
        logger.warning("alerts: notification %d: %s (%s)", notification_id,
                       outcome.result.detail, outcome.state)
    return outcome.state
