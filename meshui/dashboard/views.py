"""Dashboard pages."""

from __future__ import annotations

import logging

import redis
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from collector.graphstore import fetch_graph
from meshui.access import page_view
from meshui.dashboard.consumers import WINDOW
from meshui.dashboard.figure import page_payload
from meshui.redis import get_redis

logger = logging.getLogger(__name__)


@page_view
def graph(request: HttpRequest) -> HttpResponse:
    """The live service graph; the first frame is rendered in, the socket keeps it live."""
    try:
        initial = page_payload(fetch_graph(get_redis(), WINDOW))
    except redis.RedisError:
        logger.exception("graph page: Redis unavailable; the socket will fill the page")
        initial = None
    return render(request, "dashboard/graph.html", {"initial": initial, "nav": "graph"})
