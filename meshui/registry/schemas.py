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


class CallerShare(Schema):
    """One calling service's part of an instance: the load balancers' actual split."""

    service: str = Field(description="a service whose sidecars call this instance's service")
    share: float = Field(ge=0, le=1, description="of that service's requests to this instance's "
                                                 "service over its sidecars' last heartbeat "
                                                 "interval, the part this instance got (0 when "
                                                 "idle), rounded to 4 places")
    requests: int = Field(description="requests this instance got from it in that interval")


class InstanceLoad(Schema):
    """What the instance's callers' sidecars report about it, merged over them (from their
    heartbeats, at most 3 heartbeat intervals old)."""

    callers: list[CallerShare] = Field(description="by service; empty when no sidecar reports "
                                                   "calling it")
    ewma_ms: float | None = Field(description="the callers' peak-EWMA RTT estimates, weighted by "
                                              "their requests (null: no caller reports it)")
    outstanding: int = Field(description="requests in flight to it, summed over its callers")
    ejected: bool = Field(description="a caller's outlier detection keeps it out now")
    ejected_until: str | None = Field(json_schema_extra=DATE_TIME,
                                      description="when the last of those ejections ends")
    overflow: int = Field(description="tries to it that failed fast on a full pool, summed over "
                                      "its callers since they started")


class InstanceSummary(InstanceLoad):
    """The instance's own last heartbeat report, with its callers' view."""

    reported_at: str | None = Field(json_schema_extra=DATE_TIME,
                                    description="when its last good heartbeat state arrived "
                                                "(null: none within 3 heartbeat intervals)")
    config_revision: int | None = Field(description="the policy revision in force on it")
    uptime_s: float | None
    requests_total: int | None = Field(description="requests its sidecar handled since it started")


class InstanceIdentity(Schema):
    proxy_id: str
    service: str
    version: str
    address: str
    admin_address: str
    pid: int | None
    connected: bool
    connected_at: str | None = Field(json_schema_extra=DATE_TIME)
    last_seen: str | None = Field(json_schema_extra=DATE_TIME,
                                  description="its last heartbeat (or hello)")


# pydantic puts the fields of the last base first: identity, then the rest.
class Instance(InstanceSummary, InstanceIdentity):
    endpoints_acked: int | None = Field(
        description="the last endpoints version the sidecar acknowledged")
    sync: SyncState = Field(description="for the latest endpoints version")
    last_nack_reason: str | None


class CallerSidecar(Schema):
    """One calling sidecar's load balancer's view of the instance."""

    proxy_id: str = Field(description="the calling sidecar")
    service: str = Field(description="its service")
    share: float = Field(ge=0, le=1, description="of its requests to this instance's service "
                                                 "over its last heartbeat interval")
    requests: int = Field(description="requests it sent this instance in that interval")
    requests_total: int = Field(description="since it started (or this instance joined)")
    ewma_ms: float = Field(description="its peak-EWMA RTT estimate of this instance")
    outstanding: int = Field(description="its requests in flight to this instance")
    ejected: bool = Field(description="its outlier detection keeps this instance out now")
    ejected_until: str | None = Field(json_schema_extra=DATE_TIME)
    overflow: int = Field(description="its tries to this instance that failed fast on a full pool")
    reported_at: str = Field(json_schema_extra=DATE_TIME)


class UpstreamEndpoint(Schema):
    instance: str = Field(description="the called instance's proxy id")
    share: float = Field(ge=0, le=1, description="of the requests to the service in the last "
                                                 "interval")
    requests: int
    requests_total: int
    ewma_ms: float
    outstanding: int
    ejected: bool
    ejected_until: str | None = Field(json_schema_extra=DATE_TIME)
    overflow: int


class Upstream(Schema):
    """A service the instance calls, as its own sidecar's balancer sees it."""

    service: str
    requests: int = Field(description="requests to it in the sidecar's last heartbeat interval")
    overflow: dict[str, int] = Field(description="failed fast by each circuit-breaker limit since "
                                                 "the sidecar started")
    endpoints: list[UpstreamEndpoint] = Field(description="by proxy id")


class InstanceState(InstanceSummary, InstanceIdentity):
    """One instance: who it is, what it says about itself and its upstreams, and what its
    callers' sidecars say about it (docs/api.md)."""

    live: bool = Field(description="connected and heartbeat within 3 intervals")
    endpoints_version: int | None = Field(description="the endpoints version in force on it")
    telemetry_dropped: int | None
    caller_sidecars: list[CallerSidecar] = Field(description="by service, then proxy id")
    upstreams: list[Upstream] = Field(description="the services it calls, by name")
    upstreams_truncated: int = Field(description="instances its sidecar left out of its report "
                                                 "(at most 64 are reported)")


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
