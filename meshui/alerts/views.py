"""The alert pages (docs/ui.md, "Alerts"): every alert (/alerts), a rule's page, the rule
editor, the silences and the contact points (with their editor).

Every page is readable by whoever may read (``page_view``); the controls that change rules
are rendered for everyone and disabled, with the reason, for anyone who is not an operator
(``edit_access``), as the policy pages do. The pages' scripts read and write through the
JSON API (docs/api.md, "Alerts"); what they need to know of metrics, targets and states
comes from ``meshui.alerts.pages``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from meshui.accounts.access import EditAccess, operator_access, page_view
from meshui.alerts import notify_pages, pages, targets
from meshui.alerts.api import rule_json
from meshui.alerts.models import AlertRule, ContactPoint
from meshui.alerts.notify.api import point_json


def edit_access(user: Any) -> EditAccess:
    return operator_access(user, "edit alert rules", "Editing alert rules")


def _common(request: HttpRequest, access: EditAccess | None = None) -> dict[str, Any]:
    access = access or edit_access(request.user)
    return {"nav": "alerts", "access": access, "access_json": asdict(access),
            "vocabulary": pages.vocabulary()}


def _missing(request: HttpRequest, rule_id: int) -> HttpResponse:
    return render(request, "alerts/rule_missing.html", {**_common(request), "rule_id": rule_id},
                  status=404)


@page_view
def alerts(request: HttpRequest) -> HttpResponse:
    """Every rule on every target, live; filtered by ``?state=&severity=&label=&rule=``."""
    filters = {name: request.GET.get(name, "") for name in ("state", "severity", "label", "rule")}
    return render(request, "alerts/alerts.html", {
        **_common(request), "filters": filters, "has_rules": AlertRule.objects.exists(),
        "page": {"filters": filters}})


def _rule_page_json(row: AlertRule) -> dict[str, Any]:
    rule = rule_json(row)
    names = dict(ContactPoint.objects.filter(pk__in=rule["contact_points"])
                 .values_list("pk", "name"))
    return {"rule": rule, "target_label": targets.parse(row.target).label(),
            "condition": pages.condition_text(rule), "kind": pages.kind_of(row.target),
            "contact_points": [{"id": pk, "name": names.get(pk, f"#{pk}")}
                               for pk in rule["contact_points"]]}


@page_view
def rule(request: HttpRequest, rule_id: int) -> HttpResponse:
    """One rule: what it watches, where it stands on each target, the backtest, its history."""
    row = AlertRule.objects.prefetch_related("contact_points").filter(pk=rule_id).first()
    if row is None:
        return _missing(request, rule_id)
    page = _rule_page_json(row)
    return render(request, "alerts/rule.html", {**_common(request), "row": row, "page": page})


@page_view
def new_rule(request: HttpRequest) -> HttpResponse:
    """The editor, with a new rule pre-filled from an "Alert on this" link's query."""
    return render(request, "alerts/editor.html", {
        **_common(request), "editing": None, "page": {"rule": pages.prefill(request.GET),
                                                      "id": None}})


@page_view
def edit_rule(request: HttpRequest, rule_id: int) -> HttpResponse:
    row = AlertRule.objects.prefetch_related("contact_points").filter(pk=rule_id).first()
    if row is None:
        return _missing(request, rule_id)
    rule = rule_json(row) | {"kind": pages.kind_of(row.target)}
    return render(request, "alerts/editor.html", {
        **_common(request), "editing": row, "page": {"rule": rule, "id": row.pk}})


# What the silences and contact points pages say a viewer may not do (as the API's 403 does).
_NOTIFY_ACCESS = {"silences": ("silence alerts", "Silencing alerts"),
                  "contact-points": ("edit contact points", "Editing contact points")}


def _notify_common(request: HttpRequest, nav: str) -> dict[str, Any]:
    access = operator_access(request.user, *_NOTIFY_ACCESS[nav])
    return {**_common(request, access), "notify_vocabulary": notify_pages.vocabulary(),
            "subnav": nav}


@page_view
def silences(request: HttpRequest) -> HttpResponse:
    """Every silence (``?state=active|pending|expired``) and, for an operator, a new one;
    ``?matcher=name=value...`` (an alert's "Silence this") opens it pre-filled."""
    state = request.GET.get("state", "")
    return render(request, "alerts/silences.html", {
        **_notify_common(request, "silences"), "state": state,
        "page": {"state": state, "prefill": notify_pages.silence_prefill(request.GET)}})


@page_view
def contact_points(request: HttpRequest) -> HttpResponse:
    """Every contact point: whether it works (its last attempt), what notifies it, a test."""
    return render(request, "alerts/contact_points.html", {
        **_notify_common(request, "contact-points"),
        "has_points": ContactPoint.objects.exists()})


@page_view
def new_contact_point(request: HttpRequest) -> HttpResponse:
    return render(request, "alerts/contact_point_editor.html", {
        **_notify_common(request, "contact-points"), "editing": None,
        "page": {"id": None, "point": None}})


@page_view
def edit_contact_point(request: HttpRequest, point_id: int) -> HttpResponse:
    row = ContactPoint.objects.filter(pk=point_id).first()
    if row is None:
        return render(request, "alerts/contact_point_missing.html", {
            **_notify_common(request, "contact-points"), "point_id": point_id}, status=404)
    return render(request, "alerts/contact_point_editor.html", {
        **_notify_common(request, "contact-points"), "editing": row,
        "page": {"id": row.pk, "point": point_json(row)}})
