"""Dashboard pages."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from meshui.accounts.access import page_view
from meshui.dashboard.consumers import WINDOW
from meshui.dashboard.figure import page_payload
from meshui.dashboard.source import read_graph
from meshui.redis_clients import DATA_SOURCE_ERRORS

logger = logging.getLogger(__name__)


@page_view
def graph(request: HttpRequest) -> HttpResponse:
    """The live service graph; the first frame is rendered in, the socket keeps it live.

    Without Redis the page still renders (200), with the "data source down" banner shown;
    the socket reports the outage too and fills the page once Redis is back.
    """
    try:
        initial = page_payload(read_graph(WINDOW))
    except DATA_SOURCE_ERRORS as exc:
        logger.warning("graph page: Redis unavailable: %s", exc)
        initial = None
    return render(request, "dashboard/graph.html",
                  {"initial": initial, "source_down": initial is None, "nav": "graph"})
