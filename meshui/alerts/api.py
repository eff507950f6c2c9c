"""The alerts' endpoints of /api/v1/ (docs/api.md, "Alerts"): rules, their states, history.

Readers read (and may preview a rule: it writes nothing); operators and admins create, edit
and delete rules, each write in the audit log. A rule that cannot be saved is 400
``invalid_parameter`` whose ``parameter`` names the field (``rule.recover``,
``rule.target.source``), as every body field of the API is named.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router, Schema
from ninja.responses import Status
from pydantic import Field

from meshui.accounts.roles import Role
from meshui.alerts import backtest, rules
from meshui.alerts.evaluator import cycle_of
from meshui.alerts.models import AlertRule, AlertState, AlertTransition, ContactPoint
from meshui.alerts.notify.dispatch import active_silences, silenced_by
from meshui.alerts.notify.labels import alert_labels
from meshui.alerts.recording import announce_on_commit
from meshui.alerts.schemas import (
    AlertList,
    History,
    Preview,
    RuleIn,
    RuleList,
    RuleOut,
    Severity,
)
from meshui.alerts.states import State
from meshui.api.auth import require_role
from meshui.api.errors import RETRY_AFTER_DOC, ApiError, Error, ErrorCode, data_source_unavailable
from meshui.policy.audit import record
from meshui.policy.models import Action
from meshui.redis_clients import DATA_SOURCE_ERRORS, get_redis
from meshui.registry.api import iso_timestamp as iso

router = Router(tags=["alerts"])

READ = {401: Error}
WRITE = {400: Error, 401: Error, 403: Error}
EDIT = "editing alert rules"
# What a write names a field by: the body parameter's name, then the field.
BODY = "rule"


def rule_json(row: AlertRule) -> dict[str, Any]:
    return {"id": row.pk, "name": row.name, "target": row.target, "metric": row.metric,
            "window_s": row.window_s, "op": row.op, "fire": row.fire, "recover": row.recover,
            "for_s": row.for_s, "keep_firing_s": row.keep_firing_s, "severity": row.severity,
            "labels": row.labels, "contact_points": sorted(cp.pk for cp in row.contact_points.all()),
            "created_at": iso(row.created_at), "updated_at": iso(row.updated_at)}


def invalid(field: str, detail: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_PARAMETER, detail, parameter=f"{BODY}.{field}")


def checked(body: RuleIn, *, editing: int | None = None, preview: bool = False) -> dict[str, Any]:
    """The rule's fields checked together (``rules.check``) and against the database (a
    preview may share an existing rule's name: it is often that rule, being edited)."""
    try:
        fields = rules.check(body.model_dump(exclude_none=True))
    except rules.RuleProblem as exc:
        raise invalid(exc.field, str(exc)) from None
    same_name = None if preview else (
        AlertRule.objects.filter(name=fields["name"]).exclude(pk=editing or 0).first())
    if same_name is not None:
        raise invalid("name", f"a rule named {fields['name']!r} exists already (id {same_name.pk})")
    ids = fields["contact_points"]
    found = set(ContactPoint.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [pk for pk in ids if pk not in found]
    if missing:
        raise invalid("contact_points", f"there is no contact point {missing[0]}")
    return fields


def found(rule_id: int) -> AlertRule:
    row = AlertRule.objects.prefetch_related("contact_points").filter(pk=rule_id).first()
    if row is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"there is no alert rule {rule_id}")
    return row


def _save(row: AlertRule, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if name != "contact_points":
            setattr(row, name, value)
    row.updated_at = timezone.now()
    row.save()
    row.contact_points.set(fields["contact_points"])


@router.get("/alerts/rules", response={200: RuleList, **READ}, operation_id="listAlertRules",
            exclude_unset=True, summary="Every alert rule, by name")
def list_rules(request: HttpRequest) -> Any:
    return {"rules": [rule_json(row) for row in AlertRule.objects.for_listing()]}


@router.post("/alerts/rules", response={201: RuleOut, **WRITE}, operation_id="createAlertRule",
             exclude_unset=True, summary="A new alert rule (evaluated from the next cycle)")
def create_rule(request: HttpRequest, rule: RuleIn) -> Any:
    """400 ``invalid_parameter`` names the field at fault (``rule.recover``) and creates
    nothing."""
    require_role(request, Role.OPERATOR, EDIT)
    fields = checked(rule)
    with transaction.atomic():
        row = AlertRule(created_by=request.user if request.user.is_authenticated else None)
        _save(row, fields)
        record(request, Action.ALERT_RULE_CREATED,
               detail=f"rule {row.pk} {row.name!r}: {rules.summary(fields)}")
    return Status(201, rule_json(found(row.pk)))


@router.post("/alerts/rules/preview", response={200: Preview, 400: Error, 401: Error, 503: Error},
             operation_id="previewAlertRule", exclude_unset=True, openapi_extra=RETRY_AFTER_DOC,
             summary="Backtest: the metric over the last hour and the states the rule would "
                     "have had")
def preview_rule(request: HttpRequest, rule: RuleIn) -> Any:
    """Writes nothing, so any reader may ask (a POST only because the rule is a body).

    Each target's metric every evaluation interval over the hour, each over the rule's
    window before that moment, and the state after each evaluation from Normal at the first:
    where the rule would have been pending and firing."""
    fields = checked(rule, preview=True)
    try:
        return backtest.preview(get_redis(), fields, time.time(), settings.MESHUI_ALERTS_INTERVAL_S)
    except DATA_SOURCE_ERRORS as exc:
        raise data_source_unavailable(request, exc) from exc


@router.get("/alerts/rules/{rule_id}", response={200: RuleOut, 404: Error, **READ},
            operation_id="getAlertRule", exclude_unset=True, summary="One alert rule")
def get_rule(request: HttpRequest, rule_id: int) -> Any:
    return rule_json(found(rule_id))


def _changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    names = [name for name in new if old.get(name) != new[name]]
    return ", ".join(f"{name} {old.get(name)!r} -> {new[name]!r}" for name in names) or "nothing"


def _reset(row: AlertRule, detail: str) -> None:
    """Drop the rule's states (its target or metric changed), resolving those not Normal."""
    now = timezone.now()
    cycle = cycle_of(now.timestamp(), settings.MESHUI_ALERTS_INTERVAL_S)
    states = list(AlertState.objects.select_for_update().filter(rule=row))
    resolved = AlertTransition.objects.bulk_create([
        AlertTransition(rule=row, target_key=state.target_key, target=state.target,
                        from_state=state.state, to_state=State.NORMAL, value=None,
                        detail=detail, at=now, cycle=cycle)
        for state in states if state.state != State.NORMAL])
    AlertState.objects.filter(pk__in=[state.pk for state in states]).delete()
    if resolved:
        announce_on_commit(resolved)


@router.put("/alerts/rules/{rule_id}", response={200: RuleOut, 404: Error, **WRITE},
            operation_id="updateAlertRule", exclude_unset=True, summary="Replace an alert rule")
def update_rule(request: HttpRequest, rule_id: int, rule: RuleIn) -> Any:
    """The whole rule, as POST takes it. A new target, metric or window starts its states
    over (those firing are resolved, recorded in its history); new thresholds and periods
    apply to the states as they are from the next evaluation."""
    require_role(request, Role.OPERATOR, EDIT)
    row = found(rule_id)
    fields = checked(rule, editing=row.pk)
    old = {name: value for name, value in rule_json(row).items() if name in fields}
    with transaction.atomic():
        if any(old[name] != fields[name] for name in ("target", "metric", "window_s")):
            _reset(row, "the rule's target, metric or window changed")
        _save(row, fields)
        record(request, Action.ALERT_RULE_UPDATED,
               detail=f"rule {row.pk} {row.name!r}: {_changes(old, fields)}")
    return rule_json(found(row.pk))


@router.delete("/alerts/rules/{rule_id}", response={200: RuleOut, 404: Error, 401: Error,
                                                   403: Error},
               operation_id="deleteAlertRule", exclude_unset=True,
               summary="Delete an alert rule, its states and its history")
def delete_rule(request: HttpRequest, rule_id: int) -> Any:
    require_role(request, Role.OPERATOR, EDIT)
    row = found(rule_id)
    gone = rule_json(row)
    with transaction.atomic():
        row.delete()
        record(request, Action.ALERT_RULE_DELETED,
               detail=f"rule {rule_id} {gone['name']!r}: {rules.summary(gone)}")
    return gone


class HistoryPaging(Schema):
    page: int = Field(1, ge=1)
    per_page: int = Field(50, ge=1, le=500)


def _label_filter(raw: str | None) -> tuple[str, str] | None:
    if not raw:
        return None
    name, sep, value = raw.partition("=")
    if not sep or not name:
        raise ApiError(ErrorCode.INVALID_PARAMETER, f"label must be name=value, got {raw[:60]!r}",
                       parameter="label")
    return name, value


class AlertFilters(Schema):
    state: State | None = Field(None, description="only this state")
    severity: Severity | None = Field(None, description="only this severity")
    label: str | None = Field(None, max_length=400,
                              description="only rules with this label: name=value")
    rule: int | None = Field(None, description="only this rule's targets")


@router.get("/alerts", response={200: AlertList, 400: Error, **READ}, operation_id="listAlerts",
            exclude_unset=True, summary="Every rule on every target: its state, since when, and the value")
def list_alerts(request: HttpRequest, filters: Query[AlertFilters]) -> Any:
    """A rule not evaluated yet is listed once, on its own target, Normal since it was
    made (``last_evaluated`` null)."""
    wanted = _label_filter(filters.label)
    state = filters.state
    listed = AlertRule.objects.for_listing()
    if filters.rule is not None:
        listed = listed.filter(pk=filters.rule)
    if filters.severity is not None:
        listed = listed.filter(severity=filters.severity)
    by_rule: dict[int, list[AlertState]] = {}
    for row in AlertState.objects.filter(rule__in=listed).order_by("target_key"):
        by_rule.setdefault(row.rule_id, []).append(row)
    alerts = []
    silences = active_silences(timezone.now())
    for rule_row in listed:
        if wanted is not None and rule_row.labels.get(wanted[0]) != wanted[1]:
            continue
        common = {"rule": rule_row.pk, "name": rule_row.name, "severity": rule_row.severity,
                  "labels": rule_row.labels, "metric": rule_row.metric}
        rows = by_rule.get(rule_row.pk)
        if not rows:
            entries = [common | {"target": rule_row.target, "state": State.NORMAL,
                                 "since": iso(rule_row.updated_at), "value": None,
                                 "detail": "not evaluated yet", "last_evaluated": None}]
        else:
            entries = [common | {"target": row.target, "state": row.state, "since": iso(row.since),
                                 "value": row.value, "detail": row.detail,
                                 "last_evaluated": iso(row.last_evaluated)} for row in rows]
        for entry in entries:
            entry["silenced"] = bool(silences) and silenced_by(silences, alert_labels(
                rule_row.name, rule_row.severity, rule_row.labels, entry["target"]))
        alerts += [entry for entry in entries if state is None or entry["state"] == state]
    return {"interval_s": settings.MESHUI_ALERTS_INTERVAL_S, "alerts": alerts}


@router.get("/alerts/rules/{rule_id}/history", response={200: History, 404: Error, **READ},
            operation_id="alertRuleHistory", exclude_unset=True,
            summary="Every state change of a rule on its targets, newest first")
def history(request: HttpRequest, rule_id: int, paging: Query[HistoryPaging]) -> Any:
    row = found(rule_id)
    rows = AlertTransition.objects.filter(rule=row).newest_first()
    page, per_page = paging.page, paging.per_page
    start = (page - 1) * per_page
    return {"rule": row.pk, "count": rows.count(), "page": page, "per_page": per_page,
            "transitions": [{"at": iso(t.at), "target": t.target, "from_state": t.from_state,
                             "to_state": t.to_state, "value": t.value, "detail": t.detail}
                            for t in rows[start:start + per_page]]}

