"""The admin port's views: readiness, Prometheus text, the config in force, per-endpoint state.

Each view is a function of ``RunningSidecar``, the few parts of a running sidecar it reads
(``proxies.sidecar.Sidecar`` is one), so the admin package never imports the lifecycle
class that starts it: the sidecar imports admin, never the reverse. docs/sidecar.md
describes what each path shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from proxies.config import SidecarConfig
from proxies.dataplane.plane import DataPlane
from proxies.mesh.endpoints import EndpointRegistry
from proxies.policy.parser import policy_as_dict
from proxies.policy.store import PolicyStore
from proxies.telemetry.tailkeep import TailKeepConfig

log = logging.getLogger("proxies.admin")


class ControlState(Protocol):
    """What the views read of the control channel client (``proxies.control.client``)."""

    @property
    def state(self) -> str: ...

    def view(self) -> dict[str, Any]: ...


class TelemetryText(Protocol):
    """The telemetry's own families for the Prometheus text (``proxies.telemetry``)."""

    def prometheus(self) -> str: ...


class RunningSidecar(Protocol):
    """The parts of a running sidecar the admin views read (read-only)."""

    @property
    def config(self) -> SidecarConfig: ...
    @property
    def proxy_id(self) -> str: ...
    @property
    def listening(self) -> bool: ...
    @property
    def registry(self) -> EndpointRegistry: ...
    @property
    def policies(self) -> PolicyStore: ...
    @property
    def telemetry(self) -> TelemetryText: ...
    @property
    def control(self) -> ControlState | None: ...
    @property
    def plane(self) -> DataPlane | None: ...
    @property
    def clock(self) -> Callable[[], float]: ...


def readiness(sidecar: RunningSidecar) -> tuple[bool, str]:
    if not sidecar.listening:
        return False, "listeners not up"
    if not sidecar.registry.known:
        return False, "no endpoints received yet"
    return True, "ready"


def prometheus(sidecar: RunningSidecar) -> str:
    plane = sidecar.plane
    assert plane is not None
    extra = [
        "# HELP meshui_proxy_endpoints_version Version of the endpoint set in force (0 = none yet).",
        "# TYPE meshui_proxy_endpoints_version gauge",
        f"meshui_proxy_endpoints_version {sidecar.registry.snapshot.version}",
    ]
    control = sidecar.control
    if control is not None:
        extra += [
            "# HELP meshui_proxy_control_connected 1 while the control channel is connected.",
            "# TYPE meshui_proxy_control_connected gauge",
            f"meshui_proxy_control_connected {int(control.state == 'connected')}",
        ]
    try:
        extra.append(sidecar.telemetry.prometheus().rstrip("\n"))
    except Exception:
        log.exception("telemetry.prometheus() failed")
    if plane.tail is not None:
        extra.append(plane.tail.prometheus().rstrip("\n"))
    return plane.metrics.render(extra)


def config_view(sidecar: RunningSidecar) -> dict[str, Any]:
    config = sidecar.config
    policies = sidecar.policies
    control = sidecar.control
    return {
        "proxy_id": sidecar.proxy_id,
        "service": config.service,
        "version": config.version,
        "app": f"{config.app[0]}:{config.app[1]}",
        "endpoints": sidecar.registry.snapshot.as_dict(),
        "endpoints_source": "control" if config.control else config.endpoints_file,
        "control": control.view() if control is not None else None,
        "trace_sample": config.trace_sample,
        "tail_keep": tail_keep_view(config.tail),
        "otlp": config.otlp,
        "policy": {
            "revision": policies.policy.revision,
            "source": policies.source,
            "in_force": policy_as_dict(policies.policy),
        },
    }


def identity_view(sidecar: RunningSidecar) -> dict[str, Any]:
    """``/identity``: the SPIFFE ID, certificate and trust bundle mTLS uses (docs/sidecar.md)."""
    plane = sidecar.plane
    identity = None if plane is None else plane.identity
    if identity is None:
        return {"mtls": False, "source": None}
    return {
        "mtls": identity.ready,
        "source": "static" if sidecar.config.identity_files else "control",
        "mode": "STRICT" if plane is not None and plane.inbound_strict else "PERMISSIVE",
        **identity.view(),
    }


def tail_keep_view(tail: TailKeepConfig) -> dict[str, Any]:
    """The ``--tail-*`` settings in force (docs/sidecar.md, "Tail keep")."""
    return {
        "enabled": tail.enabled,
        "ring": tail.ring_size,
        "ring_age_s": tail.ring_age_s,
        "slow_ms": tail.slow_ms,
        "keep_rate": tail.keep_rate,
        "header": tail.header,
    }


def endpoints_view(sidecar: RunningSidecar) -> dict[str, Any]:
    snapshot = sidecar.registry.snapshot
    plane = sidecar.plane
    assert plane is not None
    now = sidecar.clock()
    destinations = {d.name: d for d in plane.destinations.values()}
    idle = {address: len(pool.idle) for address, pool in plane.pools.items()}
    return {
        "version": snapshot.version,
        "policy_revision": sidecar.policies.policy.revision,
        "destinations": {
            name: destinations[name].view(now, idle) if name in destinations else {"endpoints": []}
            for name in sorted(snapshot.services)
        },
        "local_app": plane.app_endpoint.as_dict(),
    }
