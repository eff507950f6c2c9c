"""The alerts' periodic work (scheduled by CELERY_BEAT_SCHEDULE in settings)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from meshui.alerts.evaluator import Evaluator
from meshui.alerts.window_cache import WindowCache

logger = logging.getLogger(__name__)
# What the worker process keeps of settled data from cycle to cycle.
CACHE = WindowCache()


@shared_task(name="meshui.alerts.tasks.evaluate_alerts")
def evaluate_alerts() -> dict[str, Any]:
    """The beat task: one evaluation cycle (a second run of the same cycle skips it)."""
    report = Evaluator(cache=CACHE).run()
    if report.skipped:
        logger.info("alerts: cycle %d skipped: %s", report.cycle, report.skipped)
    elif report.rules:
        logger.info("alerts: cycle %d: %d rules, %d targets, %d transitions in %.3f s%s",
                    report.cycle, report.rules, report.targets, report.transitions,
                    report.seconds.get("total", 0.0),
                    f"; {report.error}" if report.error else "")
    return report.as_json()
