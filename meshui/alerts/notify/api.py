"""Contact points, silences and notifications: their endpoints of /api/v1/ (docs/api.md).

Readers read; operators and admins create, edit, delete, test and expire, each write in
the audit log. A body that cannot be saved is 400 ``invalid_parameter`` naming the field
(``contact_point.url``, ``silence.matchers[0].value``).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from ninja import Query, Router, Schema
from ninja.responses import Status
from pydantic import Field

from meshui.accounts.roles import Role, has_role
from meshui.alerts.models import (
    AlertRule,
    AlertState,
    ContactPoint,
    DeliveryAttempt,
    Notification,
    Silence,
)
from meshui.alerts.notify import delivery, labels, matchers, points
from meshui.alerts.notify.schemas import (
    AttemptList,
    ContactPointIn,
    ContactPointList,
    ContactPointOut,
    NotificationList,
    SilenceIn,
    SilenceList,
    SilenceOut,
    TestResult,
)
from meshui.api.auth import require_role
from meshui.api.errors import ApiError, Error, ErrorCode
from meshui.policy.audit import record
from meshui.policy.models import Action
from meshui.registry.api import iso_timestamp as iso

router = Router(tags=["alerts"])

READ = {401: Error}
WRITE = {400: Error, 401: Error, 403: Error}
POINT, SILENCE = "contact_point", "silence"
MATCHING_MAX = 50


def _invalid(body: str, field: str, detail: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_PARAMETER, detail, parameter=f"{body}.{field}")


# --- contact points -------------------------------------------------------------------

def attempt_json(row: DeliveryAttempt) -> dict[str, Any]:
    return {"id": row.pk, "at": iso(row.at), "ok": row.ok, "permanent": row.permanent,
            "status_code": row.status_code, "detail": row.detail,
            "duration_ms": row.duration_ms, "notification": row.notification_id,
            "status": row.status}


def redacted(url: str) -> str:
    """A URL as a reader who may not edit sees it: webhook paths and queries carry secrets
    (Slack's ``/services/T.../B.../<key>``), so only the scheme and host are shown."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.hostname or "", "/…" if parts.path.strip("/") else "",
                       "", ""))


def point_json(row: ContactPoint, last: DeliveryAttempt | None = None,
               rules: list[int] | None = None, *, reveal: bool = True) -> dict[str, Any]:
    """``reveal``: the whole URL (operators); else its scheme and host only."""
    if rules is None:
        rules = sorted(row.rules.values_list("pk", flat=True))
    if last is None:
        last = row.attempts.order_by("-at", "-pk").first()
    status = "failing" if row.failing_since else ("untested" if last is None else "ok")
    config = dict(row.config)
    if not reveal and "url" in config:
        config["url"] = redacted(config["url"])
    return {"id": row.pk, "name": row.name, "kind": row.kind, **config,
            "send_resolved": row.send_resolved, "group_by": row.group_by,
            "group_wait_s": row.group_wait_s, "group_interval_s": row.group_interval_s,
            "repeat_interval_s": row.repeat_interval_s, "mute_times": row.mute_times,
            "status": status, "failing_reason": row.failing_reason,
            "failing_since": iso(row.failing_since),
            "last_attempt": attempt_json(last) if last else None, "rules": rules,
            "created_at": iso(row.created_at), "updated_at": iso(row.updated_at)}


def _checked_point(body: ContactPointIn, editing: int | None = None) -> dict[str, Any]:
    raw = body.model_dump()
    raw["mute_times"] = [m.model_dump(by_alias=True) for m in body.mute_times]
    try:
        fields = points.check(raw)
    except points.PointProblem as exc:
        raise _invalid(POINT, exc.field, str(exc)) from None
    same = ContactPoint.objects.filter(name=fields["name"]).exclude(pk=editing or 0).first()
    if same is not None:
        raise _invalid(POINT, "name", f"a contact point named {fields['name']!r} exists "
                                      f"already (id {same.pk})")
    return fields


def _point(point_id: int) -> ContactPoint:
    row = ContactPoint.objects.filter(pk=point_id).first()
    if row is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"there is no contact point {point_id}")
    return row


def _shown(fields: dict[str, Any]) -> str:
    where = fields["config"].get("url") or fields["config"].get("address")
    return f"{fields['kind']} {where}"


@router.get("/alerts/contact-points", response={200: ContactPointList, **READ},
            operation_id="listContactPoints", exclude_unset=True,
            summary="Every contact point, with whether it works")
def list_points(request: HttpRequest) -> Any:
    rows = list(ContactPoint.objects.all())
    rules: dict[int, list[int]] = {}
    for rule_id, point_id in AlertRule.contact_points.through.objects.values_list(
            "alertrule_id", "contactpoint_id").order_by("alertrule_id"):
        rules.setdefault(point_id, []).append(rule_id)
    reveal = has_role(request.user, Role.OPERATOR)
    return {"contact_points": [point_json(row, rules=rules.get(row.pk, []), reveal=reveal)
                               for row in rows]}


@router.post("/alerts/contact-points", response={201: ContactPointOut, **WRITE},
             operation_id="createContactPoint", exclude_unset=True,
             summary="A new contact point (webhook, email or Slack)")
def create_point(request: HttpRequest, contact_point: ContactPointIn) -> Any:
    require_role(request, Role.OPERATOR, "editing contact points")
    fields = _checked_point(contact_point)
    with transaction.atomic():
        row = ContactPoint.objects.create(**fields)
        record(request, Action.CONTACT_POINT_CREATED,
               detail=f"contact point {row.pk} {row.name!r}: {_shown(fields)}")
    return Status(201, point_json(row))


@router.get("/alerts/contact-points/{point_id}", response={200: ContactPointOut, 404: Error,
                                                          **READ},
            operation_id="getContactPoint", exclude_unset=True, summary="One contact point")
def get_point(request: HttpRequest, point_id: int) -> Any:
    return point_json(_point(point_id), reveal=has_role(request.user, Role.OPERATOR))


@router.put("/alerts/contact-points/{point_id}", response={200: ContactPointOut, 404: Error,
                                                          **WRITE},
            operation_id="updateContactPoint", exclude_unset=True,
            summary="Replace a contact point (its groups keep their state)")
def update_point(request: HttpRequest, point_id: int, contact_point: ContactPointIn) -> Any:
    require_role(request, Role.OPERATOR, "editing contact points")
    row = _point(point_id)
    fields = _checked_point(contact_point, editing=row.pk)
    with transaction.atomic():
        changed = [name for name, value in fields.items() if getattr(row, name) != value]
        for name, value in fields.items():
            setattr(row, name, value)
        if "config" in changed or "kind" in changed:
            # A new address deserves a fresh start: its failure was the old one's.
            row.failing_since, row.failing_reason = None, ""
        row.updated_at = timezone.now()
        row.save()
        record(request, Action.CONTACT_POINT_UPDATED,
               detail=f"contact point {row.pk} {row.name!r}: changed "
                      f"{', '.join(changed) or 'nothing'}")
    return point_json(row)


@router.delete("/alerts/contact-points/{point_id}", response={200: ContactPointOut, 404: Error,
                                                             401: Error, 403: Error},
               operation_id="deleteContactPoint", exclude_unset=True,
               summary="Delete a contact point (rules stop notifying it)")
def delete_point(request: HttpRequest, point_id: int) -> Any:
    require_role(request, Role.OPERATOR, "editing contact points")
    row = _point(point_id)
    gone = point_json(row)
    with transaction.atomic():
        row.delete()
        record(request, Action.CONTACT_POINT_DELETED,
               detail=f"contact point {point_id} {gone['name']!r}")
    return gone


@router.post("/alerts/contact-points/{point_id}/test", response={200: TestResult, 404: Error,
                                                                **WRITE},
             operation_id="testContactPoint", exclude_unset=True,
             summary="Send a test notification now, and say what came of it")
def test_point(request: HttpRequest, point_id: int) -> Any:
    """A firing alert named TestAlert, sent at once (no grouping, no retries). A permanent
    failure marks the contact point failing; a success clears it."""
    require_role(request, Role.OPERATOR, "testing contact points")
    row = _point(point_id)
    result, attempt = delivery.test(row, time.time())
    record(request, Action.CONTACT_POINT_TESTED,
           detail=f"contact point {row.pk} {row.name!r}: "
                  f"{'ok' if result.ok else 'failed'}: {result.detail}")
    return {"ok": result.ok, "detail": result.detail, "status_code": result.status_code,
            "attempt": attempt_json(attempt)}


class Limit(Schema):
    limit: int = Field(50, ge=1, le=500)


@router.get("/alerts/contact-points/{point_id}/attempts", response={200: AttemptList,
                                                                   404: Error, **READ},
            operation_id="contactPointAttempts", exclude_unset=True,
            summary="Every attempt at sending to a contact point, newest first")
def point_attempts(request: HttpRequest, point_id: int, paging: Query[Limit]) -> Any:
    row = _point(point_id)
    return {"attempts": [attempt_json(a) for a in row.attempts.order_by("-at", "-pk")
                         [:paging.limit]]}


class NotificationFilters(Schema):
    contact_point: int | None = None
    limit: int = Field(50, ge=1, le=500)


@router.get("/alerts/notifications", response={200: NotificationList, **READ},
            operation_id="listNotifications", exclude_unset=True,
            summary="The messages made for contact points, newest first")
def list_notifications(request: HttpRequest, filters: Query[NotificationFilters]) -> Any:
    rows = Notification.objects.all()
    if filters.contact_point is not None:
        rows = rows.filter(contact_point_id=filters.contact_point)
    return {"notifications": [
        {"id": n.pk, "contact_point": n.contact_point_id, "group_labels": n.group_labels,
         "status": n.status, "alerts": n.alerts, "state": n.state, "attempts": n.attempts,
         "last_error": n.last_error, "created_at": iso(n.created_at), "sent_at": iso(n.sent_at),
         "next_attempt_at": iso(n.next_attempt_at) if n.state == "pending" else None}
        for n in rows[:filters.limit]]}


# --- silences -------------------------------------------------------------------------

def silence_state(row: Silence, now: datetime) -> str:
    if row.ends_at <= now:
        return "expired"
    return "pending" if row.starts_at > now else "active"


def every_alert_labels() -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Every rule and target (any state), with the alert's labels; a rule not evaluated yet
    on its own target, as ``GET /alerts`` lists it."""
    found = []
    evaluated = set()
    for rule_id, name, severity, rule_labels, target, state in AlertState.objects.values_list(
            "rule_id", "rule__name", "rule__severity", "rule__labels", "target", "state"):
        evaluated.add(rule_id)
        found.append(({"rule": rule_id, "name": name, "target": target, "state": state},
                      labels.alert_labels(name, severity, rule_labels, target)))
    for rule_id, name, severity, rule_labels, target in AlertRule.objects.exclude(
            pk__in=evaluated).values_list("pk", "name", "severity", "labels", "target"):
        found.append(({"rule": rule_id, "name": name, "target": target, "state": "Normal"},
                      labels.alert_labels(name, severity, rule_labels, target)))
    return found


def silence_json(row: Silence, now: datetime,
                 alerts: list[tuple[dict[str, Any], dict[str, str]]]) -> dict[str, Any]:
    state = silence_state(row, now)
    matching: list[dict[str, Any]] = []
    if state != "expired":
        parsed = matchers.parse(row.matchers)
        matching = [alert for alert, alert_labels in alerts
                    if matchers.all_match(parsed, alert_labels)][:MATCHING_MAX]
    return {"id": row.pk, "matchers": row.matchers, "starts_at": iso(row.starts_at),
            "ends_at": iso(row.ends_at), "comment": row.comment,
            "created_by": row.created_by.get_username() if row.created_by else "",
            "state": state, "matching": matching}


class SilenceFilters(Schema):
    state: str | None = Field(None, pattern="^(active|pending|expired)$")


STATE_ORDER = {"active": 0, "pending": 1, "expired": 2}


@router.get("/alerts/silences", response={200: SilenceList, 400: Error, **READ},
            operation_id="listSilences", exclude_unset=True,
            summary="Silences: active, pending and expired")
def list_silences(request: HttpRequest, filters: Query[SilenceFilters]) -> Any:
    now = timezone.now()
    alerts = every_alert_labels()
    rows = [silence_json(row, now, alerts)
            for row in Silence.objects.select_related("created_by")[:500]]
    if filters.state:
        rows = [row for row in rows if row["state"] == filters.state]
    rows.sort(key=lambda row: STATE_ORDER[row["state"]])
    return {"silences": rows}


def _when(raw: str | None, field: str) -> datetime | None:
    if raw is None:
        return None
    try:
        value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise _invalid(SILENCE, field, "an ISO 8601 time with its offset, such as "
                                       "2026-12-03T12:00:00Z")
    return value


@router.post("/alerts/silences", response={201: SilenceOut, **WRITE},
             operation_id="createSilence", exclude_unset=True,
             summary="A new silence: alerts its matchers match are not notified until it ends")
def create_silence(request: HttpRequest, silence: SilenceIn) -> Any:
    """Evaluation goes on; a silenced alert is shown ``silenced`` in ``GET /alerts``."""
    require_role(request, Role.OPERATOR, "silencing alerts")
    raw = [m.model_dump() for m in silence.matchers]
    try:
        matchers.parse(raw)
    except matchers.MatcherProblem as exc:
        raise _invalid(SILENCE, exc.field, str(exc)) from None
    now = timezone.now()
    starts = _when(silence.starts_at, "starts_at") or now
    ends = _when(silence.ends_at, "ends_at")
    if (ends is None) == (silence.duration_s is None):
        raise _invalid(SILENCE, "ends_at", "give ends_at or duration_s (one of them)")
    if ends is None:
        ends = starts + timedelta(seconds=silence.duration_s or 0)
    if ends <= starts or ends <= now:
        raise _invalid(SILENCE, "ends_at", "a silence ends after it starts, and in the future")
    with transaction.atomic():
        row = Silence.objects.create(
            matchers=raw, starts_at=starts, ends_at=ends, comment=silence.comment,
            created_by=request.user if request.user.is_authenticated else None)
        shown = ", ".join(str(m) for m in matchers.parse(raw))
        record(request, Action.SILENCE_CREATED,
               detail=f"silence {row.pk} {shown} from {iso(starts)} to {iso(ends)}: "
                      f"{silence.comment}")
    return Status(201, silence_json(row, now, every_alert_labels()))


def _expire(request: HttpRequest, silence_id: int) -> Any:
    require_role(request, Role.OPERATOR, "expiring silences")
    row = Silence.objects.select_related("created_by").filter(pk=silence_id).first()
    if row is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"there is no silence {silence_id}")
    now = timezone.now()
    with transaction.atomic():
        if row.ends_at > now:
            # A pending one too ends now (Alertmanager moves its start to now as well).
            row.starts_at, row.ends_at = min(row.starts_at, now), now
            row.save(update_fields=["starts_at", "ends_at"])
        record(request, Action.SILENCE_EXPIRED, detail=f"silence {row.pk} expired")
    return silence_json(row, now, [])


class SilenceId(Schema):
    id: int


@router.delete("/alerts/silences", response={200: SilenceOut, 404: Error, **WRITE},
               operation_id="expireSilenceById", exclude_unset=True,
               summary="Expire a silence (?id=N): it ends now and stays listed, expired")
def expire_silence_query(request: HttpRequest, which: Query[SilenceId]) -> Any:
    return _expire(request, which.id)


@router.delete("/alerts/silences/{silence_id}", response={200: SilenceOut, 404: Error,
                                                         **WRITE},
               operation_id="expireSilence", exclude_unset=True,
               summary="Expire a silence: it ends now and stays listed, expired")
def expire_silence(request: HttpRequest, silence_id: int) -> Any:
    return _expire(request, silence_id)
