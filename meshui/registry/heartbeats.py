"""A heartbeat's ``state``, validated at the edge (docs/control-channel.md, "The heartbeat's upstreams").

The sidecar is not trusted: every count is an integer in range, every number finite, every
name passes the sidecar's own rules (proxies/mesh/schema.py), the lists are bounded. Pure: a
decoded ``state`` object in, a frozen ``StateReport`` out, or ``ReportProblem`` naming the
dotted path of the first value at fault. ``ejected`` is judged on its own (frames.py), as it
was before the report grew; unknown keys are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from proxies.mesh.schema import HEARTBEAT_ENDPOINTS_MAX, proxy_id_problem, service_name_problem, shown
from proxies.traffic.circuit import LIMITS

INT64_MAX = 2**63 - 1
NUMBER_MAX = 1e12  # ms of EWMA, seconds of uptime or interval: far past any real value
EPOCH_MAX = 1e11  # epoch seconds (year 5138), the bound frames.py keeps for ``ejected``


class ReportProblem(ValueError):
    """A value of the state meshui refuses; ``field`` is its dotted path (``state.uptime_s``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


@dataclass(frozen=True, slots=True)
class EndpointReport:
    """One instance as a caller's balancer sees it."""

    instance: str
    requests: int  # since the reporter's previous heartbeat
    requests_total: int
    ewma_ms: float
    outstanding: int
    ejected: bool
    until: float | None  # epoch seconds, while ejected
    overflow: int


@dataclass(frozen=True, slots=True)
class UpstreamReport:
    """One destination service a sidecar calls, and the instances it reported."""

    service: str
    overflow: tuple[tuple[str, int], ...]  # (circuit-breaker limit, count), in LIMITS order
    endpoints: tuple[EndpointReport, ...]


@dataclass(frozen=True, slots=True)
class StateReport:
    """What one heartbeat says about its sidecar (None: the sidecar did not say)."""

    endpoints_version: int | None = None
    config_revision: int | None = None
    requests_total: int | None = None
    telemetry_dropped: int | None = None
    uptime_s: float | None = None
    upstreams: tuple[UpstreamReport, ...] = ()
    upstreams_truncated: int = 0
    upstreams_interval_s: float | None = None


def _count(value: Any, where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
        raise ReportProblem(where, f"must be an integer in 0..{INT64_MAX}, got {shown(value)}")
    return value


def _number(value: Any, where: str, high: float = NUMBER_MAX, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not 0 <= value <= high):
        raise ReportProblem(where, f"must be a number in 0..{high:g}, got {shown(value)}")
    return float(value)


def _name(value: Any, where: str, check: Any) -> str:
    problem = check(value)
    if problem is not None:
        raise ReportProblem(where, problem)
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReportProblem(where, f"must be an object, got {shown(value)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ReportProblem(where, f"must be a list, got {shown(value)}")
    return value


def _endpoint(raw: Any, where: str) -> EndpointReport:
    entry = _object(raw, where)
    ejected = entry.get("ejected", False)
    if not isinstance(ejected, bool):
        raise ReportProblem(f"{where}.ejected", f"must be true or false, got {shown(ejected)}")
    until = _number(entry.get("until"), f"{where}.until", EPOCH_MAX, optional=True)
    if ejected and until is None:
        raise ReportProblem(f"{where}.until", "must be epoch seconds when 'ejected' is true")
    return EndpointReport(
        instance=_name(entry.get("instance"), f"{where}.instance", proxy_id_problem),
        requests=_count(entry.get("requests"), f"{where}.requests"),
        requests_total=_count(entry.get("requests_total"), f"{where}.requests_total"),
        ewma_ms=_number(entry.get("ewma_ms"), f"{where}.ewma_ms"),
        outstanding=_count(entry.get("outstanding"), f"{where}.outstanding"),
        ejected=ejected,
        until=until if ejected else None,
        overflow=_count(entry.get("overflow", 0), f"{where}.overflow"),
    )


def _upstream(raw: Any, where: str, budget: list[int]) -> UpstreamReport:
    entry = _object(raw, where)
    service = _name(entry.get("service"), f"{where}.service", service_name_problem)
    overflow = _object(entry.get("overflow", {}), f"{where}.overflow")
    counts = tuple((limit, _count(overflow.get(limit, 0), f"{where}.overflow.{limit}"))
                   for limit in LIMITS)
    endpoints = _list(entry.get("endpoints"), f"{where}.endpoints")
    budget[0] -= len(endpoints)
    if budget[0] < 0:
        raise ReportProblem(f"{where}.endpoints", f"more than {HEARTBEAT_ENDPOINTS_MAX} "
                                                  "instances in all")
    parsed = tuple(_endpoint(e, f"{where}.endpoints[{n}]") for n, e in enumerate(endpoints))
    seen: set[str] = set()
    for n, endpoint in enumerate(parsed):
        if endpoint.instance in seen:
            raise ReportProblem(f"{where}.endpoints[{n}].instance",
                                f"{endpoint.instance} is listed twice")
        seen.add(endpoint.instance)
    return UpstreamReport(service, counts, parsed)


def parse_state(state: dict[str, Any]) -> StateReport:
    """The heartbeat's ``state`` as a ``StateReport``; ReportProblem names the first bad value."""
    raw = state.get("upstreams", [])
    upstreams = _list(raw, "state.upstreams")
    if len(upstreams) > HEARTBEAT_ENDPOINTS_MAX:  # each lists an instance at least
        raise ReportProblem("state.upstreams", f"has {len(upstreams)} services; at most "
                                               f"{HEARTBEAT_ENDPOINTS_MAX}")
    budget = [HEARTBEAT_ENDPOINTS_MAX]  # instances left to take, over every service
    parsed = tuple(_upstream(u, f"state.upstreams[{n}]", budget) for n, u in enumerate(upstreams))
    services = [u.service for u in parsed]
    if len(set(services)) != len(services):
        duplicate = next(s for s in services if services.count(s) > 1)
        raise ReportProblem("state.upstreams", f"lists {duplicate} twice")
    return StateReport(
        endpoints_version=_count(state.get("endpoints_version"), "state.endpoints_version",
                                 optional=True),
        config_revision=_count(state.get("config_revision"), "state.config_revision",
                               optional=True),
        requests_total=_count(state.get("requests_total"), "state.requests_total", optional=True),
        telemetry_dropped=_count(state.get("telemetry_dropped"), "state.telemetry_dropped",
                                 optional=True),
        uptime_s=_number(state.get("uptime_s"), "state.uptime_s", optional=True),
        upstreams=parsed,
        upstreams_truncated=_count(state.get("upstreams_truncated", 0),
                                   "state.upstreams_truncated"),
        upstreams_interval_s=_number(state.get("upstreams_interval_s"),
                                     "state.upstreams_interval_s", optional=True),
    )
