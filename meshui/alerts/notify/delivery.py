"""Sending a notification: one attempt at a time, each logged, retried with backoff.

A send claims its row first (``pending`` and due -> ``sending``, a compare-and-set), so
two workers handed the same id send it once. The attempt is a ``DeliveryAttempt`` whatever
comes of it. Then:

- sent: ``sent``; the contact point, if it was failing, is not any more;
- a permanent failure (``senders``: a 4xx, a refused address): ``failed``, and the contact
  point is marked failing with the reason (what the contact points page shows);
- a transient one: ``pending`` again, due after a backoff of ``MESHUI_NOTIFY_BACKOFF_S``
  doubling with each attempt (up to 5 min, plus up to a quarter of it at random so that
  receivers coming back are not hit all at once); after ``MESHUI_NOTIFY_MAX_ATTEMPTS`` it
  is given up: ``failed``, the contact point failing.

A worker that dies mid-send leaves its row ``sending``; once its lease is over, ``due``
hands it out again (at least once, as Alertmanager: a receiver may see a message twice,
never none).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from meshui.alerts.models import ContactPoint, Delivery, DeliveryAttempt, Notification
from meshui.alerts.notify import payload, senders
from meshui.alerts.recording import as_datetime

LEASE_S = 4 * senders.TIMEOUT_S
BACKOFF_MAX_S = 300.0
REASON_MAX = 500


def backoff(attempts: int, base: float, jitter: float | None = None) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones."""
    delay = min(base * 2 ** (attempts - 1), BACKOFF_MAX_S)
    return delay * (1 + (random.random() if jitter is None else jitter) / 4)


@dataclass(frozen=True, slots=True)
class Outcome:
    state: str  # Delivery, or "skipped": not claimed (sent, sending or not due)
    retry_in: float | None = None
    result: senders.Result | None = None


def _mark(point_id: int, result: senders.Result, at: datetime, *, gave_up: int = 0) -> None:
    """A contact point's health after an attempt: failing with why, or fine."""
    if result.ok:
        ContactPoint.objects.filter(pk=point_id, failing_since__isnull=False).update(
            failing_since=None, failing_reason="")
        return
    reason = result.detail if not gave_up else (
        f"gave up after {gave_up} attempts; the last: {result.detail}")
    ContactPoint.objects.filter(pk=point_id, failing_since__isnull=True).update(failing_since=at)
    ContactPoint.objects.filter(pk=point_id).update(failing_reason=reason[:REASON_MAX])


def _log(point_id: int, notification: Notification | None, status: str, at: datetime,
         result: senders.Result) -> DeliveryAttempt:
    return DeliveryAttempt.objects.create(
        contact_point_id=point_id, notification=notification, status=status, at=at,
        ok=result.ok, permanent=result.permanent, status_code=result.status_code,
        detail=result.detail, duration_ms=result.duration_ms)


def deliver(notification_id: int, now: float) -> Outcome:
    """Try to send one notification once, if it is due and nobody else is sending it."""
    now_dt = as_datetime(now)
    claimed = Notification.objects.filter(
        pk=notification_id, state=Delivery.PENDING, next_attempt_at__lte=now_dt,
    ).update(state=Delivery.SENDING, lease_until=now_dt + timedelta(seconds=LEASE_S))
    if not claimed:
        return Outcome("skipped")
    row = Notification.objects.select_related("contact_point").filter(pk=notification_id).first()
    if row is None:  # its contact point was deleted since (the cascade took it)
        return Outcome("skipped")
    point = row.contact_point
    result = senders.send(point.kind, point.config, row.payload)
    at = now_dt + timedelta(milliseconds=result.duration_ms)
    retry_in = None
    with transaction.atomic():
        _log(point.pk, row, row.status, at, result)
        row.attempts += 1
        row.lease_until = None
        if result.ok:
            row.state, row.sent_at, row.last_error = Delivery.SENT, at, ""
            _mark(point.pk, result, at)
        elif result.permanent or row.attempts >= settings.MESHUI_NOTIFY_MAX_ATTEMPTS:
            row.state, row.last_error = Delivery.FAILED, result.detail[:REASON_MAX]
            _mark(point.pk, result, at, gave_up=0 if result.permanent else row.attempts)
        else:
            retry_in = backoff(row.attempts, settings.MESHUI_NOTIFY_BACKOFF_S)
            row.state, row.last_error = Delivery.PENDING, result.detail[:REASON_MAX]
            row.next_attempt_at = at + timedelta(seconds=retry_in)
        row.save(update_fields=["attempts", "lease_until", "state", "sent_at", "last_error",
                                "next_attempt_at"])
    return Outcome(row.state, retry_in, result)


def due(now: float) -> list[int]:
    """Notifications to hand out again: pending and due (their retry's task was lost), or
    sending past their lease (their worker died)."""
    now_dt = as_datetime(now)
    Notification.objects.filter(state=Delivery.SENDING, lease_until__lt=now_dt).update(
        state=Delivery.PENDING, lease_until=None, next_attempt_at=now_dt)
    return list(Notification.objects.filter(
        Q(state=Delivery.PENDING) & Q(next_attempt_at__lte=now_dt)).values_list("pk", flat=True)[:500])


def test(point: ContactPoint, now: float) -> tuple[senders.Result, DeliveryAttempt]:
    """Send a test message to ``point`` now and log it; it says whether the point works."""
    body = payload.test_body(point.name, now, settings.MESHUI_EXTERNAL_URL)
    result = senders.send(point.kind, point.config, body)
    at = as_datetime(now) + timedelta(milliseconds=result.duration_ms)
    with transaction.atomic():
        attempt = _log(point.pk, None, "test", at, result)
        if result.ok or result.permanent:
            _mark(point.pk, result, at)
    return result, attempt
