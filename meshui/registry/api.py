"""The registry's endpoints of /api/v1/ (docs/api.md): services and sidecar instances."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from django.utils import timezone
from ninja import Router

from meshui.api.errors import RETRY_AFTER_DOC, Error, data_source_unavailable
from meshui.redis_clients import DATA_SOURCE_ERRORS
from meshui.registry.ejections import acurrent as current_ejections
from meshui.registry.endpoints import acurrent_version, aendpoints_status, published_at
from meshui.registry.models import Instance, Service
from meshui.registry.schemas import EjectionList, InstanceList, ServiceList

router = Router(tags=["registry"])


def iso_timestamp(value: datetime | None) -> str | None:
    """``2026-11-21T01:59:02.120000Z``: ISO 8601 in UTC, microseconds kept."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def service_listing() -> list[dict[str, Any]]:
    """Every service by name with its instances, and which of them are live."""
    live = set(Instance.objects.live().values_list("pk", flat=True))
    result = []
    for service in Service.objects.prefetch_related("instances"):
        instances = sorted(service.instances.all(), key=lambda i: i.proxy_id)
        result.append({
            "name": service.name,
            "created_at": iso_timestamp(service.created_at),
            "versions": sorted({i.version for i in instances if i.pk in live and i.version}),
            "live_instances": sum(1 for i in instances if i.pk in live),
            "instances": [
                {"proxy_id": i.proxy_id, "version": i.version, "address": i.address,
                 "connected": i.connected, "live": i.pk in live}
                for i in instances
            ],
        })
    return result


def instance_listing(endpoints_version: int | None, published_at: datetime | None
                     ) -> list[dict[str, Any]]:
    """Every instance by service then proxy id, with its sync state for ``endpoints_version``."""
    now = timezone.now()
    return [
        {
            "proxy_id": instance.proxy_id,
            "service": instance.service.name,
            "version": instance.version,
            "address": instance.address,
            "admin_address": instance.admin_address,
            "pid": instance.pid,
            "connected": instance.connected,
            "connected_at": iso_timestamp(instance.connected_at),
            "last_seen": iso_timestamp(instance.last_seen),
            "endpoints_acked": instance.endpoints_acked,
            "sync": instance.endpoints_sync(endpoints_version, published_at, now).state,
            "last_nack_reason": instance.last_nack_reason or None,
        }
        for instance in Instance.objects.for_listing()
    ]


@router.get("/services", response={200: ServiceList, 401: Error}, operation_id="listServices",
            summary="Registered services with their instances and live versions")
def services(request: HttpRequest) -> Any:
    """A service appears when its first sidecar says hello; ``versions`` and ``live`` count
    only live instances (connection open, heartbeat within 3 intervals)."""
    return {"services": service_listing()}


@router.get("/instances", response={200: InstanceList, 401: Error, 503: Error},
            operation_id="listInstances",
            summary="Every sidecar instance with its connection and sync state",
            openapi_extra=RETRY_AFTER_DOC)
async def instances(request: HttpRequest) -> Any:
    """Sync states are for the latest endpoints version, which lives in Redis (so this is 503
    while Redis is down)."""
    try:
        version = await acurrent_version()
        status = await aendpoints_status()
    except DATA_SOURCE_ERRORS as exc:
        raise data_source_unavailable(request, exc) from exc
    return {
        "endpoints_version": version,
        # Whether the last endpoints publish went out (docs/control-channel.md).
        "endpoints_status": status,
        "instances": await sync_to_async(instance_listing)(version, published_at(status)),
    }


@router.get("/ejections", response={200: EjectionList, 401: Error, 503: Error},
            operation_id="listEjections",
            summary="Instances the sidecars' outlier detection keeps out now, by whom, until when",
            openapi_extra=RETRY_AFTER_DOC)
async def ejections(request: HttpRequest, service: str | None = None) -> Any:
    """From the sidecars' heartbeats (every MESHUI_HEARTBEAT_INTERVAL seconds): each sidecar
    ejects on its own, so an instance lists every caller that keeps it out; ``service``
    narrows the list to one service's instances."""
    try:
        rows = await current_ejections(service)
    except DATA_SOURCE_ERRORS as exc:
        raise data_source_unavailable(request, exc) from exc
    for row in rows:
        row["until"] = iso_timestamp(datetime.fromtimestamp(row["until"], UTC))
    return {"ejections": rows}
