"""The registry's JSON in the API (docs/api.md): services, instances, sync states."""

from __future__ import annotations

from ninja import Schema
from pydantic import Field
from pydantic.json_schema import JsonDict

from meshui.registry.endpoints import EndpointsStatus
from meshui.registry.models import SyncState

# Timestamps are ISO 8601 text in UTC with a "Z", microseconds kept (``iso_timestamp``).
DATE_TIME: JsonDict = {"format": "date-time"}


class ServiceInstance(Schema):
    proxy_id: str
    version: str
    address: str
    connected: bool
    live: bool = Field(description="connected and heartbeat within 3 intervals")


class Service(Schema):
    name: str
    created_at: str = Field(json_schema_extra=DATE_TIME)
    versions: list[str] = Field(description="versions of the live instances")
    live_instances: int
    instances: list[ServiceInstance] = Field(description="by proxy id")


class ServiceList(Schema):
    services: list[Service] = Field(description="by name")


class Instance(Schema):
    proxy_id: str
    service: str
    version: str
    address: str
    admin_address: str
    pid: int | None
    connected: bool
    connected_at: str | None = Field(json_schema_extra=DATE_TIME)
    last_seen: str | None = Field(json_schema_extra=DATE_TIME)
    endpoints_acked: int | None = Field(
        description="the last endpoints version the sidecar acknowledged")
    sync: SyncState = Field(description="for the latest endpoints version")
    last_nack_reason: str | None


class InstanceList(Schema):
    endpoints_version: int | None = Field(
        description="the latest endpoints version sent (null before any sidecar connected)")
    endpoints_status: EndpointsStatus | None = Field(
        description="the last endpoints publish (null before the first one)")
    instances: list[Instance] = Field(description="by service, then proxy id")


class EjectionOut(Schema):
    service: str
    instance: str = Field(description="the ejected instance's proxy id")
    until: str = Field(json_schema_extra=DATE_TIME,
                       description="when the last of its ejections ends")
    ejected_by: list[str] = Field(description="the sidecars (proxy ids) keeping it out")


class EjectionList(Schema):
    ejections: list[EjectionOut]
