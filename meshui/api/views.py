"""The JSON API under /api/v1/ (docs/api.md; schema in meshui/api/openapi.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest, JsonResponse

from collector.graphstore import fetch_graph, validate_window
from meshui.access import api_view, json_error
from meshui.api.openapi import OPENAPI
from meshui.redis import get_redis
from meshui.registry.endpoints import current_version, endpoints_status
from meshui.registry.models import Instance, Service

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
    return JsonResponse(fetch_graph(get_redis(), window))


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
    version = current_version()
    return JsonResponse({
        "endpoints_version": version,
        # Whether the last endpoints publish went out (docs/control-channel.md).
        "endpoints_status": endpoints_status(),
        "instances": [_instance_json(i, version) for i in Instance.objects.for_listing()],
    })


@api_view("GET")
def openapi(request: HttpRequest) -> JsonResponse:
    return JsonResponse(OPENAPI)
