"""Dashboard pages."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from collector.tracesearch import trace_id_problem
from meshui.accounts.access import page_view
from meshui.alerts import pages as alert_pages
from meshui.alerts.views import edit_access as alert_access
from meshui.dashboard.figure import MUTED, page_payload
from meshui.dashboard.graph_view import GraphView, view_from_query
from meshui.dashboard.health import AMBER, HEALTH, RED, HealthScale
from meshui.dashboard.instance_graph import read_instance_graph
from meshui.dashboard.source import DEFAULT_WINDOW, read_graph, window_label
from meshui.dashboard.trace_links import normalized_trace_id, trace_link
from meshui.dashboard.trace_pages import (
    TRACE_TTL_S,
    search_page_settings,
    trace_page_settings,
    ttl_label,
)
from meshui.dashboard.trust_domain import trust_domain
from meshui.policy import revisions
from meshui.policy.effective import MARK_LABELS, policy_marks
from meshui.redis_clients import DATA_SOURCE_ERRORS

logger = logging.getLogger(__name__)


def graph_page_settings(scale: HealthScale, window: int, view: GraphView | None = None,
                        alerts_editable: bool = False) -> dict[str, Any]:
    """What graph.js reads from the server (``json_script``, never a JS copy): the health
    scale it colours the tables with, the window the page shows, the services it draws
    expanded into their instances, and how it shows alerts (badges; "Alert on this" for an
    operator)."""
    return {"health": scale.page_json(), "window": window, "window_label": window_label(window),
            "view": (view or GraphView()).as_json(),
            "alerts": alert_pages.graph_settings(alerts_editable, RED, AMBER)}


# How often the page asks for the marks and the sidecars' sync state.
POLICY_POLL_MS = 3000


def graph_policy_settings() -> dict[str, Any]:
    """What graph.js marks services with (the current revision's ``policy_marks``)."""
    number, document = revisions.current_document()
    return {"marks": policy_marks(number, document), "labels": MARK_LABELS,
            "mark_color": MUTED, "fault_color": RED,
            "poll_ms": POLICY_POLL_MS}


@page_view
def graph(request: HttpRequest) -> HttpResponse:
    """The live service graph; the first frame is rendered in, the socket keeps it live.

    Without Redis the page still renders (200), with the "data source down" banner shown;
    the socket reports the outage too and fills the page once Redis is back.
    """
    scale = HEALTH
    view = view_from_query(request.GET)
    try:
        if view.at_instance_level:
            graph = read_instance_graph(DEFAULT_WINDOW)
            initial = page_payload(graph, scale, expanded=view.expanded(graph),
                                   trust_domain=trust_domain())
        else:
            initial = page_payload(read_graph(DEFAULT_WINDOW), scale, trust_domain=trust_domain())
    except DATA_SOURCE_ERRORS as exc:
        logger.warning("graph page: Redis unavailable: %s", exc)
        initial = None
    alerts_editable = alert_access(request.user).allowed
    return render(request, "dashboard/graph.html", {
        "initial": initial, "source_down": initial is None, "nav": "graph",
        "page": graph_page_settings(scale, DEFAULT_WINDOW, view, alerts_editable),
        "alerts_editable": alerts_editable, "legend": scale.legend(),
        "policy": graph_policy_settings()})


@page_view
def traces(request: HttpRequest) -> HttpResponse:
    """The trace search; the script runs it (GET /api/v1/traces) from the query string.

    A usable ``?trace_id=`` (any case, spaces around it) opens that trace's waterfall; any
    other is left to the search, whose 400 names the field.
    """
    raw = request.GET.get("trace_id", "")
    normalized = normalized_trace_id(raw) if raw else None
    if normalized is not None:
        return redirect("trace", trace_id=normalized)
    return render(request, "dashboard/traces.html", {
        "nav": "traces", "page": search_page_settings(), "ttl": ttl_label(TRACE_TTL_S)})


@page_view
def trace(request: HttpRequest, trace_id: str) -> HttpResponse:
    """One trace's waterfall; the script fetches the spans (GET /api/v1/traces/{trace_id}).

    An id in upper case is redirected to its canonical lower-case form; anything that is
    not a trace id is a 400 page that says why. Whether the trace is stored is the script's
    to find out (a 404 from the API is the page's "not found" state).
    """
    normalized = normalized_trace_id(trace_id)
    if normalized is not None and normalized != trace_id:
        return redirect("trace", trace_id=normalized)
    if normalized is None:
        return render(request, "dashboard/trace.html", {
            "nav": "traces", "trace_id": trace_id[:64], "ttl": ttl_label(TRACE_TTL_S),
            "problem": trace_id_problem(trace_id) or "not a usable trace id"}, status=400)
    link = trace_link(normalized)
    return render(request, "dashboard/trace.html", {
        "nav": "traces", "trace_id": normalized, "ttl": ttl_label(TRACE_TTL_S),
        "link": link, "link_host": urlsplit(link).netloc if link else "",
        "page": trace_page_settings(normalized, link)})
