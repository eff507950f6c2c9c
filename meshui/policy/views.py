"""The policy pages: a service's page with its editors, the history, the YAML editor, the audit log.

Every page is readable by whoever may read (``page_view``); the controls that change the
policy are rendered for everyone and disabled, with the reason, for anyone who is not an
operator (``edit_access``). Writes go through the JSON API from the page's script.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from meshui.accounts.access import EditAccess, operator_access, page_view
from meshui.alerts.views import edit_access as alert_access
from meshui.dashboard.source import WINDOW_CHOICES, page_window, read_graph, window_label
from meshui.dashboard.trust_domain import trust_domain
from meshui.policy import authorization_page, diff, fields, revisions, service_page
from meshui.policy.effective import MARK_LABELS
from meshui.policy.models import AuditEntry, Revision
from meshui.policy.status import proxy_status
from meshui.redis_clients import DATA_SOURCE_ERRORS
from meshui.registry.models import Service
from proxies.mesh.schema import service_name_problem

logger = logging.getLogger(__name__)
PER_PAGE = 20


def edit_access(user: Any) -> EditAccess:
    return operator_access(user, "change the traffic policy", "Changing the traffic policy")


def _graph(window: int) -> dict[str, Any] | None:
    try:
        return dict(read_graph(window))
    except DATA_SOURCE_ERRORS as exc:  # the page still renders; its numbers say so
        logger.warning("service page: Redis unavailable: %s", exc)
        return None


def _known(name: str, graph: dict[str, Any] | None, document: dict[str, Any]) -> bool:
    """Registered, seen in the graph, or named by the policy."""
    if Service.objects.filter(name=name).exists() or name in (document.get("services") or {}):
        return True
    return any(node.get("id") == name for node in (graph or {}).get("nodes") or ())


@page_view
def service(request: HttpRequest, name: str) -> HttpResponse:
    """One service: golden numbers, versions and instances, and every policy editor."""
    access = edit_access(request.user)
    try:
        window = page_window(request.GET.get("window"))
    except ValueError as exc:
        return render(request, "policy/service_unknown.html", {
            "name": name, "window_problem": str(exc), "nav": "graph"}, status=400)
    problem = service_name_problem(name)
    graph = _graph(window) if problem is None else None
    number, document = revisions.current_document()
    if problem is not None or not _known(name, graph, document):
        return render(request, "policy/service_unknown.html", {
            "name": name, "problem": problem, "nav": "graph"})
    proxies = proxy_status()["proxies"]
    page = service_page.page_json(name, graph, proxies, number, document, window,
                                  trust_domain())
    return render(request, "policy/service.html", {
        "name": name, "page": page, "nav": "graph", "access": access,
        "alerts_editable": alert_access(request.user).allowed,
        "access_json": asdict(access), "cards": fields.cards(page["values"]),
        "split_help": fields.SPLIT_HELP,
        "routes_help": fields.ROUTES_HELP, "mark_labels": MARK_LABELS,
        "authorization_help": authorization_page.HELP,
        "window": window, "window_label": window_label(window),
        "windows": [(w, window_label(w)) for w in WINDOW_CHOICES], "window_seconds": WINDOW_CHOICES,
        "source_down": graph is None})


def _page(request: HttpRequest, queryset: Any) -> Any:
    return Paginator(queryset, PER_PAGE).get_page(request.GET.get("page"))


@page_view
def history(request: HttpRequest) -> HttpResponse:
    """Every revision, newest first: who, from where, when, why; diffs and rollbacks."""
    access = edit_access(request.user)
    rows = _page(request, Revision.objects.newest_first())
    current = Revision.objects.current()
    return render(request, "policy/history.html", {
        "rows": rows, "current": current.number if current else 0, "nav": "history",
        "access": access, "access_json": asdict(access),
        "page": {"current": current.number if current else 0}})


@page_view
def edit(request: HttpRequest) -> HttpResponse:
    """The whole document as YAML, validated on the server as it is typed."""
    access = edit_access(request.user)
    number, document = revisions.current_document()
    return render(request, "policy/edit.html", {
        "text": diff.as_yaml(document), "revision": number, "nav": "history",
        "access": access, "access_json": asdict(access), "page": {"revision": number}})


@page_view
def audit(request: HttpRequest) -> HttpResponse:
    """The audit log: every write and every refused one, newest first."""
    rows = _page(request, AuditEntry.objects.newest_first())
    return render(request, "policy/audit.html", {"rows": rows, "nav": "audit"})
