"""The registry's endpoints of /api/v1/ (docs/api.md): services and sidecar instances."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router

from meshui.api.errors import RETRY_AFTER_DOC, ApiError, Error, ErrorCode, data_source_unavailable
from meshui.redis_clients import DATA_SOURCE_ERRORS
from meshui.registry import instance_state
from meshui.registry.ejections import acurrent as current_ejections
from meshui.registry.endpoints import acurrent_version, aendpoints_status, published_at
from meshui.registry.instance_views import (
    caller_rows,
    empty_load,
    instance_loads,
    summary,
    upstream_rows,
)
from meshui.registry.models import Instance, Service, stale_after
from meshui.registry.schemas import EjectionList, InstanceList, InstanceState, ServiceList
from proxies.mesh.schema import proxy_id_problem, service_name_problem

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


def identity(instance: Instance) -> dict[str, Any]:
    """Who an instance is and whether its control connection is up."""
    return {
        "proxy_id": instance.proxy_id,
        "service": instance.service.name,
        "version": instance.version,
        "address": instance.address,
        "admin_address": instance.admin_address,
        "pid": instance.pid,
        "connected": instance.connected,
        "connected_at": iso_timestamp(instance.connected_at),
        "last_seen": iso_timestamp(instance.last_seen),
    }


def instance_listing(endpoints_version: int | None, published_at: datetime | None,
                     service: str | None = None) -> list[dict[str, Any]]:
    """Every instance (of ``service``, or all) by service then proxy id, with its sync state
    for ``endpoints_version``."""
    now = timezone.now()
    rows = Instance.objects.for_listing()
    if service is not None:
        rows = rows.filter(service__name=service)
    return [
        {
            **identity(instance),
            "endpoints_acked": instance.endpoints_acked,
            "sync": instance.endpoints_sync(endpoints_version, published_at, now).state,
            "last_nack_reason": instance.last_nack_reason or None,
        }
        for instance in rows
    ]


async def with_summaries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with its own last report and its callers' merged view (instance_state.py)."""
    now = time.time()
    own, callers = await instance_state.aread([r["proxy_id"] for r in rows],
                                              [r["service"] for r in rows], now)
    loads = {service: instance_loads(entries, now) for service, entries in callers.items()}
    return [{**row, **summary(own.get(row["proxy_id"]),
                              loads.get(row["service"], {}).get(row["proxy_id"]) or empty_load())}
            for row in rows]


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
async def instances(request: HttpRequest, service: str | None = Query(
        None, description="only this service's instances")) -> Any:
    """Sync states are for the latest endpoints version, and the live state comes from the
    sidecars' heartbeats, both in Redis (so this is 503 while Redis is down)."""
    if service is not None and service_name_problem(service) is not None:
        raise ApiError(ErrorCode.INVALID_PARAMETER, f"service {service_name_problem(service)}",
                       parameter="service")
    try:
        version = await acurrent_version()
        status = await aendpoints_status()
        rows = await sync_to_async(instance_listing)(version, published_at(status), service)
        rows = await with_summaries(rows)
    except DATA_SOURCE_ERRORS as exc:
        raise data_source_unavailable(request, exc) from exc
    return {
        "endpoints_version": version,
        # Whether the last endpoints publish went out (docs/control-channel.md).
        "endpoints_status": status,
        "instances": rows,
    }


def registered(proxy_id: str) -> dict[str, Any] | None:
    """The instance's identity and liveness, or None when no sidecar registered it."""
    instance = Instance.objects.select_related("service").filter(proxy_id=proxy_id).first()
    if instance is None:
        return None
    live = (instance.connected and instance.last_seen is not None
            and instance.last_seen >= timezone.now() - stale_after())
    return {**identity(instance), "live": live}


@router.get("/instances/{proxy_id}/state",
            response={200: InstanceState, 400: Error, 401: Error, 404: Error, 503: Error},
            operation_id="getInstanceState",
            summary="One instance: its own live state, what it reports about its upstreams, and "
                    "what its callers' load balancers report about it",
            openapi_extra=RETRY_AFTER_DOC)
async def instance_state_view(request: HttpRequest, proxy_id: str) -> Any:
    """From the sidecars' heartbeats (every MESHUI_HEARTBEAT_INTERVAL seconds), never from
    their admin ports: each caller's share is of that caller's requests to the instance's
    service over its last heartbeat interval."""
    problem = proxy_id_problem(proxy_id)
    if problem is not None:
        raise ApiError(ErrorCode.INVALID_PARAMETER, f"proxy_id {problem}", parameter="proxy_id")
    row = await sync_to_async(registered)(proxy_id)
    if row is None:
        raise ApiError(ErrorCode.NOT_FOUND,
                       f"no instance {proxy_id} is registered: no sidecar with that proxy id has "
                       "said hello to meshui (GET /api/v1/instances lists those that have)")
    now = time.time()
    try:
        own, callers = await instance_state.aread([proxy_id], [row["service"]], now)
    except DATA_SOURCE_ERRORS as exc:
        raise data_source_unavailable(request, exc) from exc
    entries = callers.get(row["service"], {})
    report = own.get(proxy_id)
    load = instance_loads(entries, now).get(proxy_id) or empty_load()
    return {
        **row, **summary(report, load),
        "endpoints_version": report.get("endpoints_version") if report else None,
        "telemetry_dropped": report.get("telemetry_dropped") if report else None,
        "caller_sidecars": caller_rows(proxy_id, entries, now),
        "upstreams": upstream_rows(report["upstreams"], now) if report else [],
        "upstreams_truncated": report["upstreams_truncated"] if report else 0,
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
