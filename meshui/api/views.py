"""The JSON API under /api/v1/ (docs/api.md; schema in meshui/api/openapi.py)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.http import HttpRequest, JsonResponse

from collector.graphstore import validate_window
from meshui.access import api_view, json_error
from meshui.api.openapi import OPENAPI
from meshui.dashboard.source import DATA_SOURCE_ERRORS, RETRY_AFTER, read_graph
from meshui.registry.endpoints import current_version, endpoints_status
from meshui.registry.models import Instance, Service

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = 60


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def parse_window(raw: str | None) -> int:
    """The ``window`` query parameter: an integer from 1 to 3600 seconds (default 60)."""
    if raw is None or raw == "":
        return DEFAULT_WINDOW
    try:
        window = int(raw)
    except ValueError:
        raise ValueError(f"window must be an integer number of seconds, got {raw!r}") from None
    return validate_window(window)


@api_view("GET")
def graph(request: HttpRequest) -> JsonResponse:
    try:
        window = parse_window(request.GET.get("window"))
    except ValueError as exc:
        return json_error(400, "invalid_parameter", str(exc), parameter="window")
    try:
        graph = read_graph(window)
    except DATA_SOURCE_ERRORS as exc:
        return unavailable(request, exc)
    return JsonResponse(graph)


def unavailable(request: HttpRequest, exc: BaseException) -> JsonResponse:
    """Redis is down or restarting: transient, so 503 + Retry-After, never a 500 (issue 6)."""
    logger.warning("%s %s: Redis unavailable: %s", request.method, request.path, exc)
    response = json_error(
        503, "data_source_unavailable",
        f"the live graph store (Redis) is unavailable ({type(exc).__name__}); "
        f"retry in {RETRY_AFTER} s")
    response["Retry-After"] = str(RETRY_AFTER)
    return response


def _instance_json(instance: Instance, endpoints_version: int | None) -> dict[str, Any]:
    return {
        "proxy_id": instance.proxy_id,
        "service": instance.service.name,
        "version": instance.version,
        "address": instance.address,
        "admin_address": instance.admin_address,
        "pid": instance.pid,
        "connected": instance.connected,
        "connected_at": _iso(instance.connected_at),
        "last_seen": _iso(instance.last_seen),
        "endpoints_acked": instance.endpoints_acked,
        "sync": instance.sync_state(endpoints_version),
        "last_nack_reason": instance.last_nack_reason or None,
    }


@api_view("GET")
def services(request: HttpRequest) -> JsonResponse:
    live = set(Instance.objects.live().values_list("pk", flat=True))
    result = []
    for service in Service.objects.prefetch_related("instances"):
        instances = sorted(service.instances.all(), key=lambda i: i.proxy_id)
        result.append({
            "name": service.name,
            "created_at": _iso(service.created_at),
            "versions": sorted({i.version for i in instances if i.pk in live and i.version}),
            "live_instances": sum(1 for i in instances if i.pk in live),
            "instances": [
                {"proxy_id": i.proxy_id, "version": i.version, "address": i.address,
                 "connected": i.connected, "live": i.pk in live}
                for i in instances
            ],
        })
    return JsonResponse({"services": result})


@api_view("GET")
def instances(request: HttpRequest) -> JsonResponse:
    try:
        version = current_version()  # the endpoints version and status live in Redis
        status = endpoints_status()
    except DATA_SOURCE_ERRORS as exc:
        return unavailable(request, exc)
    return JsonResponse({
        "endpoints_version": version,
        # Whether the last endpoints publish went out (docs/control-channel.md).
        "endpoints_status": status,
        "instances": [_instance_json(i, version) for i in Instance.objects.for_listing()],
    })


@api_view("GET")
def openapi(request: HttpRequest) -> JsonResponse:
    return JsonResponse(OPENAPI)
