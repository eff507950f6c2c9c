"""What may travel on the control channel: the one definition of a valid name and address.

The sidecar checks an ``endpoints`` message (``proxies.mesh.endpoints.validate_services``) and
its own flags (``proxies.config``) with these functions, and meshui checks every ``hello``
with the very same ones (meshui/registry/frames.py), so meshui can never register a name
that would make every sidecar NACK the next endpoints push (issue 6: one hello with service
``Evil:Name`` did exactly that). Pure, no I/O, no imports beyond the standard library:
meshui imports this module, and proxies never imports Django or meshui.

Each ``*_problem`` function returns None for a good value, or what is wrong with it (the
caller prefixes the field's path, so every error names the field).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

# The sidecar's WebSocket frame limit (websockets' max_size on the control connection): a
# bigger frame closes the connection (1009). meshui keeps its endpoints messages below it.
CONTROL_FRAME_MAX_BYTES = 1 << 20
# The largest endpoints message meshui sends: the limit less some room, so a frame meshui
# sends is never one the sidecar refuses (MESHUI_CONTROL_ENDPOINTS_MAX_BYTES may go lower).
ENDPOINTS_MAX_BYTES = CONTROL_FRAME_MAX_BYTES - 1024

# Service names are host names apps call (``Host: catalog``): an RFC 1123 DNS label,
# lower case, as Kubernetes Service names are.
SERVICE_NAME_MAX = 63
_SERVICE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Versions label instances (``v1``, ``2.3.0-rc1``); empty means unversioned.
VERSION_MAX = 63
_VERSION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
# Ejected instances a heartbeat reports (the rest are left out: meshui shows the first ones).
HEARTBEAT_EJECTIONS_MAX = 64
# Upstream instances a heartbeat reports the balancer's state of (``state.upstreams``): the
# ejected ones first, then the busiest; the rest are counted in ``upstreams_truncated``.
# With every name at its longest, a heartbeat carrying both lists still fits meshui's 64 KiB
# frame limit (tests/proxies/test_heartbeat_upstreams.py measures it).
HEARTBEAT_ENDPOINTS_MAX = 64
# Proxy ids (the ``instance`` of an endpoint): default ``<service>-<version>-<6 hex>``.
PROXY_ID_MAX = 200
_PROXY_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,198}[A-Za-z0-9])?")
# ``host:port``: the whole string at most 255 characters (the registry's column).
ADDRESS_MAX = 255
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
# A NACK's reason as the sidecar sends it and meshui stores it (longer ones are cut).
NACK_REASON_MAX = 1000


def shown(value: Any, limit: int = 40) -> str:
    """``repr`` cut short: an error message never echoes a megabyte back."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def service_name_problem(value: Any) -> str | None:
    if not isinstance(value, str) or _SERVICE.fullmatch(value) is None:
        return (
            f"must be a lower-case DNS label (a-z, 0-9 and '-', not at either end, "
            f"1..{SERVICE_NAME_MAX} characters), got {shown(value)}"
        )
    return None


def version_problem(value: Any) -> str | None:
    if not isinstance(value, str) or (value and _VERSION.fullmatch(value) is None):
        return (
            f"must be empty or letters, digits, '.', '_' and '-' (starting and ending with a "
            f"letter or digit, at most {VERSION_MAX} characters), got {shown(value)}"
        )
    return None


def proxy_id_problem(value: Any) -> str | None:
    if not isinstance(value, str) or _PROXY_ID.fullmatch(value) is None:
        return (
            f"must be letters, digits, '.', '_' and '-' (starting and ending with a letter or "
            f"digit, 1..{PROXY_ID_MAX} characters), got {shown(value)}"
        )
    return None


def _host_problem(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return True
        return False
    labels = host.split(".")
    return len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels)


def address_problem(value: Any) -> str | None:
    """``host:port`` where host is a DNS name, an IPv4 address or ``[IPv6]``."""
    message = (
        f"must be 'host:port' (a DNS name, IPv4 or [IPv6] host; port 1..65535; at most "
        f"{ADDRESS_MAX} characters), got {shown(value)}"
    )
    if not isinstance(value, str) or len(value) > ADDRESS_MAX or ":" not in value:
        return message
    host, _, port = value.rpartition(":")
    if not host or _host_problem(host) or _PORT.fullmatch(port) is None:
        return message
    if not 0 < int(port) < 65536:
        return message
    return None


def join_address(host: str, port: int) -> str:
    """(host, port) -> ``host:port``, an IPv6 host in brackets (what ``address_problem`` takes)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_address(value: str) -> tuple[str, int]:
    """A checked ``host:port`` (``address_problem`` is None) -> (host, port), IPv6 unbracketed."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


# The ``export_traces`` frame (docs/control-channel.md): meshui asks every sidecar to export
# the spans it still holds of these traces (tail keep, proxies.telemetry.tailkeep). The
# collector names them, meshui relays them and the sidecar checks them, all with this rule.
EXPORT_TRACES_MAX_IDS = 256
TRACE_ID_HEX = 32
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_ZERO_TRACE_ID = "0" * TRACE_ID_HEX


def trace_ids_problem(value: Any) -> str | None:
    """A list of 1..EXPORT_TRACES_MAX_IDS W3C trace ids: 32 lower-case hex digits, not all zero."""
    if not isinstance(value, list) or not value:
        return f"must be a non-empty list of trace ids, got {shown(value)}"
    if len(value) > EXPORT_TRACES_MAX_IDS:
        return f"has {len(value)} trace ids; at most {EXPORT_TRACES_MAX_IDS}"
    for n, trace_id in enumerate(value):
        if (not isinstance(trace_id, str) or _TRACE_ID.fullmatch(trace_id) is None
                or trace_id == _ZERO_TRACE_ID):
            return (f"[{n}] must be a trace id of {TRACE_ID_HEX} lower-case hex digits, not all "
                    f"zero, got {shown(trace_id)}")
    return None
