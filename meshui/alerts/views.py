"""The alert pages: every alert (/alerts), a rule's page, and the rule editor (docs/ui.md).

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
from meshui.alerts import pages, targets
from meshui.alerts.api import rule_json
from meshui.alerts.models import AlertRule, ContactPoint


def edit_access(user: Any) -> EditAccess:
    return operator_access(user, "edit alert rules", "Editing alert rules")


def _common(request: HttpRequest) -> dict[str, Any]:
    access = edit_access(request.user)
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
