"""A pass over the notification groups: which messages are due, made in one transaction.

Each pass (after every evaluation cycle, and every ``MESHUI_ALERTS_DISPATCH_S`` from beat)
reads the firing alert states, the active silences and the contact points, puts every
firing alert in a group per contact point of its rule, and lets ``grouping.decide`` say for
each group that is due what to send. The group rows are locked for the pass
(``select_for_update``; SQLite's IMMEDIATE transactions serialise writers), so two workers
passing at once make each message once: the second finds the groups flushed. Two passes
creating the same new group: the loser's unique-constraint error rolls back and it passes
again. The messages are ``Notification`` rows; after the commit their ids go to
``enqueue`` (the Celery send task).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from meshui.alerts import targets
from meshui.alerts.models import (
    AlertRule,
    AlertState,
    ContactPoint,
    Notification,
    NotificationGroup,
    Silence,
)
from meshui.alerts.notify import grouping, labels, matchers, mute, payload
from meshui.alerts.recording import as_datetime
from meshui.alerts.states import FIRING_STATES, State

logger = logging.getLogger(__name__)
DEFAULT_GROUP_BY = ["alertname"]


def timing_of(point: ContactPoint) -> grouping.Timing:
    return grouping.Timing(float(point.group_wait_s), float(point.group_interval_s),
                           float(point.repeat_interval_s), point.send_resolved)


def _alert_json(alert: grouping.Alert) -> dict[str, Any]:
    return {"labels": dict(alert.labels), "annotations": dict(alert.annotations),
            "starts_at": alert.starts_at, "rule": alert.rule}


def _alert_of(fp: str, raw: Mapping[str, Any]) -> grouping.Alert:
    return grouping.Alert(fp, raw["labels"], raw["annotations"], float(raw["starts_at"]),
                          int(raw["rule"]))


def active_silences(now: datetime) -> list[list[matchers.Matcher]]:
    found = []
    for raw in Silence.objects.filter(starts_at__lte=now, ends_at__gt=now).values_list(
            "matchers", flat=True):
        try:
            found.append(matchers.parse(raw))
        except matchers.MatcherProblem:  # checked when made; a hand-edited row is skipped
            logger.warning("alerts: a silence with bad matchers is ignored: %r", raw)
    return found


def silenced_by(silences: Iterable[list[matchers.Matcher]], alert_labels: Mapping[str, str]
                ) -> bool:
    return any(matchers.all_match(silence, alert_labels) for silence in silences)


@dataclass(slots=True)
class FiringAlert:
    alert: grouping.Alert
    contact_points: list[int]


def firing_alerts() -> list[FiringAlert]:
    """Every rule's firing states as alerts, with the contact points of their rule."""
    routes: dict[int, list[int]] = {}
    for rule_id, point_id in AlertRule.contact_points.through.objects.values_list(
            "alertrule_id", "contactpoint_id"):
        routes.setdefault(rule_id, []).append(point_id)
    found = []
    # Firing, and in Error after firing (its data source failing says nothing about it).
    rows = AlertState.objects.filter(
        Q(state__in=FIRING_STATES) | Q(state=State.ERROR, firing_since__isnull=False)
    ).values_list(
        "rule_id", "rule__name", "rule__severity", "rule__labels", "rule__metric", "rule__op",
        "rule__fire", "target", "value", "detail", "since", "firing_since")
    for (rule_id, name, severity, rule_labels, metric, op, fire, target, value, detail, since,
         firing_since) in rows:
        alert_labels = labels.alert_labels(name, severity, rule_labels, target)
        where = targets.parse(target).label()
        alert = grouping.Alert(
            labels.fingerprint(alert_labels), alert_labels,
            payload.describe(metric, value, detail, where, op, fire),
            (firing_since or since).timestamp(), rule_id)
        found.append(FiringAlert(alert, routes.get(rule_id, [])))
    return found


@dataclass(slots=True)
class Report:
    groups: int = 0
    created: list[int] = field(default_factory=list)  # notification ids


def _pass(now: float, enqueue: Callable[[list[int]], None]) -> Report:
    now_dt = as_datetime(now)
    points = {point.pk: point for point in ContactPoint.objects.all()}
    silences = active_silences(now_dt)
    # (contact point, group key) -> (the grouping labels, the group's firing alerts)
    wanted: dict[tuple[int, str], tuple[dict[str, str], dict[str, grouping.Alert]]] = {}
    for item in firing_alerts():
        for point_id in item.contact_points:
            point = points.get(point_id)
            if point is None:  # made since the contact points were read: the next pass
                continue
            by = labels.group_labels(item.alert.labels, point.group_by or DEFAULT_GROUP_BY)
            key = labels.group_key(by)
            wanted.setdefault((point_id, key), (by, {}))[1][item.alert.fingerprint] = item.alert
    report = Report()
    with transaction.atomic():
        rows = {(row.contact_point_id, row.key): row
                for row in NotificationGroup.objects.select_for_update()}
        created, changed, gone = [], [], []
        messages: list[Notification] = []
        for place in rows.keys() | wanted.keys():
            point_id, key = place
            row = rows.get(place)
            if row is not None and row.next_at > now_dt:
                continue  # not due: nothing can change before its time
            by, active = wanted.get(place, (row.labels if row else {}, {}))
            point = points[point_id]
            group = (grouping.Group(now) if row is None else grouping.Group(
                row.created_at.timestamp(),
                row.flushed_at.timestamp() if row.flushed_at else None,
                row.sent_at.timestamp() if row.sent_at else None,
                {fp: _alert_of(fp, raw) for fp, raw in row.notified.items()}))
            silenced = frozenset(
                fp for fp, alert in (*active.items(), *group.notified.items())
                if silenced_by(silences, alert.labels))
            decision = grouping.decide(group, active, silenced, now, timing_of(point),
                                       muted=mute.muted(mute.parse(point.mute_times), now_dt))
            report.groups += 1
            if decision.message is not None:
                body = payload.webhook_body(decision.message, receiver=point.name,
                                            group_key=f"{point_id}:{key}", group_labels=by,
                                            now=now, external_url=settings.MESHUI_EXTERNAL_URL)
                messages.append(Notification(
                    contact_point_id=point_id, group_labels=by, status=decision.message.status,
                    payload=body, alerts=len(body["alerts"]) + body["truncatedAlerts"],
                    next_attempt_at=now_dt, created_at=now_dt))
            if decision.group is None:
                if row is not None:
                    gone.append(row.pk)
                continue
            fields = {"labels": by, "created_at": as_datetime(decision.group.created_at),
                      "flushed_at": _maybe(decision.group.flushed_at),
                      "sent_at": _maybe(decision.group.sent_at),
                      "notified": {fp: _alert_json(a) for fp, a in decision.group.notified.items()},
                      "next_at": as_datetime(decision.next_at or now)}
            if row is None:
                created.append(NotificationGroup(contact_point_id=point_id, key=key, **fields))
            else:
                for name, value in fields.items():
                    setattr(row, name, value)
                changed.append(row)
        if created:
            created = NotificationGroup.objects.bulk_create(created)
        by_place = {(g.contact_point_id, g.key): g for g in [*created, *changed]}
        for message in messages:
            message.group = by_place.get((message.contact_point_id,
                                          labels.group_key(message.group_labels)))
        if changed:
            NotificationGroup.objects.bulk_update(
                changed, ["labels", "created_at", "flushed_at", "sent_at", "notified", "next_at"])
        if gone:
            NotificationGroup.objects.filter(pk__in=gone).delete()
        if messages:
            messages = Notification.objects.bulk_create(messages)
            report.created = [message.pk for message in messages]
            ids = list(report.created)
            transaction.on_commit(lambda: enqueue(ids))
    return report


def _maybe(seconds: float | None) -> datetime | None:
    return None if seconds is None else as_datetime(seconds)


def run(now: float, enqueue: Callable[[list[int]], None]) -> Report:
    """One pass at ``now``; the ids of the messages it made go to ``enqueue`` after commit."""
    try:
        return _pass(now, enqueue)
    except IntegrityError:
        # Another pass made one of our new groups first: go again, finding it.
        logger.info("alerts: a notification group was made by another pass; passing again")
        return _pass(now, enqueue)
