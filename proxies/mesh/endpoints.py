"""The set of upstream instances the sidecar routes to, as an immutable snapshot.

A new state (from the control channel or a static file) is validated, built into a new
``EndpointSnapshot`` and swapped in by one reference assignment; a request keeps the
snapshot it started with, so a swap never changes the instances of a request in flight.
Per-endpoint counters (outstanding requests, the peak-EWMA estimate, the
outlier detector's counters and ejection) live on ``Endpoint`` objects that are carried
over to the next snapshot when the same instance is still there, so a config or endpoints
swap neither forgets a latency estimate nor lets an ejected instance back early.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxies.mesh.schema import (
    address_problem,
    proxy_id_problem,
    service_name_problem,
    shown,
    split_address,
    version_problem,
)


class EndpointsError(ValueError):
    """A malformed endpoints state; the message names the offending key."""


class Endpoint:
    """One upstream instance (another sidecar's inbound listener, or the local app)."""

    __slots__ = (
        "service",
        "instance",
        "version",
        "address",
        "host",
        "port",
        "outstanding",
        "requests_total",
        # proxies/traffic/balancer.py (peak-EWMA): the RTT estimate in seconds (None until the
        # balancer first looks at the instance) and when it was last updated (clock seconds).
        "ewma_s",
        "ewma_stamp",
        # proxies/traffic/outlier.py (Envoy's outlier detection), see OutlierDetector.
        "consecutive_5xx",
        "consecutive_gateway",
        "ejected_until",  # 0.0 = not ejected; else when the sweep may return it
        "times_ejected",  # Envoy's ejection-time multiplier: +1 per ejection, -1 per healthy sweep
        "ejections",  # ejections ever, for the admin port
        # Tries to this instance failed fast because the destination's pool was full
        # (max_pending_requests, max_connections): counted off the request path, on overflow.
        "overflows",
    )

    def __init__(self, service: str, instance: str, version: str, host: str, port: int) -> None:
        self.service = service
        self.instance = instance
        self.version = version
        self.host = host
        self.port = port
        self.address = f"{host}:{port}"
        self.outstanding = 0
        self.requests_total = 0
        self.ewma_s: float | None = None
        self.ewma_stamp = 0.0
        self.consecutive_5xx = 0
        self.consecutive_gateway = 0
        self.ejected_until = 0.0
        self.times_ejected = 0
        self.ejections = 0
        self.overflows = 0

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.service, self.instance, self.version, self.address)

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "address": self.address,
            "version": self.version,
            "outstanding": self.outstanding,
            "requests_total": self.requests_total,
        }


class ServiceEndpoints:
    """The instances of one service in a snapshot."""

    __slots__ = ("name", "endpoints")

    def __init__(self, name: str, endpoints: tuple[Endpoint, ...]) -> None:
        self.name = name
        self.endpoints = endpoints


class EndpointSnapshot:
    """An immutable endpoints state: ``version`` and ``services`` by name."""

    __slots__ = ("version", "services", "by_host", "known")

    def __init__(self, version: int, services: Mapping[str, ServiceEndpoints]) -> None:
        self.version = version
        self.services = services
        # Request hosts arrive as bytes; index by them so the hot path never decodes.
        self.by_host = {name.encode("ascii"): entry for name, entry in services.items()}
        self.known = ", ".join(sorted(services)) or "(none)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "services": {
                name: [
                    {"instance": e.instance, "version": e.version, "address": e.address}
                    for e in entry.endpoints
                ]
                for name, entry in sorted(self.services.items())
            },
        }


EMPTY = EndpointSnapshot(0, {})


def parse_address(value: Any, where: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); raises EndpointsError naming ``where``."""
    if not isinstance(value, str) or ":" not in value:
        raise EndpointsError(f"{where}: address must be 'host:port', got {value!r}")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise EndpointsError(f"{where}: address must be 'host:port', got {value!r}")
    return host, int(port_text)


def validate_services(services: Any) -> dict[str, list[tuple[str, str, str, int]]]:
    """Check a ``{name: [{instance, version, address}]}`` mapping; return it normalised.

    Raises EndpointsError whose message names the first bad key.
    """
    if not isinstance(services, dict):
        raise EndpointsError("services: must be an object of service name -> list of instances")
    out: dict[str, list[tuple[str, str, str, int]]] = {}
    for name, instances in services.items():
        # The names and addresses meshui accepts in a hello: one definition (proxies.mesh.schema).
        problem = service_name_problem(name)
        if problem is not None:
            printable = isinstance(name, str) and name.isprintable() and len(name) <= 80
            raise EndpointsError(f"services.{name if printable else shown(name)}: {problem}")
        if not isinstance(instances, list):
            raise EndpointsError(f"services.{name}: must be a list of instances")
        rows = []
        for i, spec in enumerate(instances):
            where = f"services.{name}[{i}]"
            if not isinstance(spec, dict):
                raise EndpointsError(f"{where}: must be an object")
            instance, version = spec.get("instance"), spec.get("version")
            for key, value, check in (
                ("instance", instance, proxy_id_problem),
                ("version", version, version_problem),
                ("address", spec.get("address"), address_problem),
            ):
                problem = check(value)
                if problem is not None:
                    raise EndpointsError(f"{where}.{key}: {problem}")
            host, port = split_address(spec["address"])
            rows.append((spec["instance"], spec["version"], host, port))  # checked: strings
        out[name] = rows
    return out


class EndpointRegistry:
    """Holds the snapshot in force; ``apply`` validates, builds and swaps."""

    __slots__ = ("snapshot", "known", "_on_swap")

    def __init__(self) -> None:
        self.snapshot: EndpointSnapshot = EMPTY
        self.known = False  # True once any state was applied (readiness)
        self._on_swap: list[Any] = []

    def on_swap(self, callback: Any) -> None:
        self._on_swap.append(callback)

    def apply(self, version: Any, services: Any) -> EndpointSnapshot:
        """Validate and swap in a new state; on EndpointsError the old one stays."""
        if not isinstance(version, int) or isinstance(version, bool):
            raise EndpointsError(f"version: must be an integer, got {version!r}")
        rows = validate_services(services)
        previous = {e.key: e for entry in self.snapshot.services.values() for e in entry.endpoints}
        built: dict[str, ServiceEndpoints] = {}
        for name, specs in rows.items():
            endpoints = []
            for instance, inst_version, host, port in specs:
                fresh = Endpoint(name, instance, inst_version, host, port)
                endpoints.append(previous.get(fresh.key, fresh))
            built[name] = ServiceEndpoints(name, tuple(endpoints))
        snapshot = EndpointSnapshot(version, built)
        old, self.snapshot, self.known = self.snapshot, snapshot, True
        for callback in self._on_swap:
            callback(old, snapshot)
        return snapshot


def known_versions(snapshot: EndpointSnapshot) -> dict[str, frozenset[str]]:
    """Service -> versions of its instances, for validating splits.

    A service with no instances is left out: nothing is known about its versions yet, so a
    policy may already name the versions that are about to start.
    """
    return {
        name: frozenset(e.version for e in entry.endpoints)
        for name, entry in snapshot.services.items()
        if entry.endpoints
    }
