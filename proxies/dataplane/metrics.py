"""In-process counters for the admin port's Prometheus text: connect errors, rejected requests,
open connections, and what traffic policy did (retries, overflow, ejections, timeouts,
faults, rate limiting).

Requests are counted once, by telemetry (``meshui_proxy_requests_total``, rendered by
``proxies.telemetry.prometheus``); these are what telemetry does not see. Rendering
happens only on scrape. Policy events are also counted per edge in ``edges``, which the
metrics export sends over OTLP (``proxies.telemetry.counters``, docs/telemetry.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from proxies.dataplane.errors import REJECT_REASONS
from proxies.telemetry.counters import EdgeCounters
from proxies.telemetry.events import (
    AUDIT_DENIED,
    DENIED,
    EJECTIONS,
    FAULTS,
    MTLS,
    OVERFLOWS,
    RATE_LIMITED,
    RETRIES,
    RETRY_BUDGET_EXHAUSTED,
    TIMEOUTS,
    EdgeEvent,
)
from proxies.traffic.circuit import LIMITS as OVERFLOW_LIMITS
from proxies.traffic.ratelimit import DESTINATION, SOURCE

# "header" (a client too slow to send a request head) is on the admin port only: it has no edge.
TIMEOUT_KINDS = ("connect", "request", "per-try", "idle", "header")
DIRECTIONS = ("inbound", "outbound")
FAULT_KINDS = ("delay", "abort")
RATE_LIMIT_SCOPES = (DESTINATION, SOURCE)
# Why a mutual-TLS connection was refused (docs/security.md): inbound by the listener
# (proxies.dataplane.listener), outbound by the pool's connector (the peer's handshake
# failed, or its SPIFFE ID was not the destination service's).
MTLS_REFUSALS = {
    "inbound": ("plaintext", "handshake", "no_identity", "identity", "timeout"),
    "outbound": ("handshake", "identity"),
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class ProxyMetrics:
    """Connect errors, requests rejected while parsing, and open connections by side."""

    __slots__ = (
        "connect_errors",
        "rejected",
        "refused_connections",
        "active_connections",
        "retries_total",
        "retry_budget_exhausted",
        "ejections_total",
        "overflow",
        "timeouts",
        "faults",
        "rate_limited",
        "inbound_rate_limited",
        "mtls_refused",
        "mtls_total",
        "denied",
        "audit_denied",
        "edges",
    )

    def __init__(self, edges: EdgeCounters | None = None) -> None:
        # Policy events per edge since the last export; telemetry takes them (see module doc).
        self.edges = edges if edges is not None else EdgeCounters()
        self.connect_errors: dict[tuple[str, str, str], int] = {}
        # Every series exists from the start, so rate() sees the first rejection.
        self.rejected = {(direction, reason): 0 for direction in DIRECTIONS for reason in REJECT_REASONS}
        self.refused_connections = dict.fromkeys(DIRECTIONS, 0)
        self.active_connections = {"inbound": 0, "outbound": 0, "upstream": 0}
        self.retries_total = 0
        self.retry_budget_exhausted = 0
        self.ejections_total = 0
        self.overflow = dict.fromkeys(OVERFLOW_LIMITS, 0)
        self.timeouts = dict.fromkeys(TIMEOUT_KINDS, 0)
        self.faults = dict.fromkeys(FAULT_KINDS, 0)
        # Outbound (this sidecar's limit per destination) and inbound (the local service's own
        # limit on its callers) are one family told apart by a direction label.
        self.rate_limited = dict.fromkeys(RATE_LIMIT_SCOPES, 0)
        self.inbound_rate_limited = dict.fromkeys(RATE_LIMIT_SCOPES, 0)
        self.mtls_refused = {(d, r): 0 for d, reasons in MTLS_REFUSALS.items() for r in reasons}
        self.mtls_total = 0
        self.denied: dict[str, int] = {}  # by rule name (at most 256 a policy, and the default)
        self.audit_denied = 0

    # Policy events: the lifetime total for the admin port, and the edge for the export.
    # source/destination are the exchange's (outbound: this service -> the destination;
    # inbound: the caller -> this service).

    def count_retry(self, source: str, destination: str) -> None:
        self.retries_total += 1
        self.edges.add(RETRIES, source, destination)

    def count_retry_budget_exhausted(self, source: str, destination: str) -> None:
        self.retry_budget_exhausted += 1
        self.edges.add(RETRY_BUDGET_EXHAUSTED, source, destination)

    def count_ejection(self, source: str, destination: str) -> None:
        self.ejections_total += 1
        self.edges.add(EJECTIONS, source, destination)

    def count_overflow(self, limit: str, source: str, destination: str) -> None:
        self.overflow[limit] = self.overflow.get(limit, 0) + 1
        self.edges.add(OVERFLOWS, source, destination, (("meshui.limit", limit),))

    def count_timeout(self, kind: str, source: str | None = None, destination: str | None = None) -> None:
        """Count a timeout; without an edge (a client connection idle between requests) it
        is on the admin port only."""
        self.timeouts[kind] = self.timeouts.get(kind, 0) + 1
        if source is not None and destination is not None:
            self.edges.add(TIMEOUTS, source, destination, (("meshui.kind", kind),))

    def count_fault(self, kind: str, source: str, destination: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1
        self.edges.add(FAULTS, source, destination, (("meshui.kind", kind),))

    def count_rate_limited(self, scope: str, outbound: bool, source: str, destination: str) -> None:
        counts = self.rate_limited if outbound else self.inbound_rate_limited
        counts[scope] = counts.get(scope, 0) + 1
        direction = "outbound" if outbound else "inbound"
        self.edges.add(
            RATE_LIMITED,
            source,
            destination,
            (("meshui.scope", scope), ("meshui.direction", direction)),
        )

    def count_mtls(self, source: str, destination: str) -> None:
        """A request that arrived over mTLS from ``source``'s sidecar (the padlock's share)."""
        self.mtls_total += 1
        self.edges.add(MTLS, source, destination)

    def count_denied(self, rule: str, source: str, destination: str) -> None:
        self.denied[rule] = self.denied.get(rule, 0) + 1
        self.edges.add(DENIED, source, destination)

    def count_audit_denied(self, source: str, destination: str) -> None:
        self.audit_denied += 1
        self.edges.add(AUDIT_DENIED, source, destination)

    def count_mtls_refused(self, direction: str, reason: str) -> None:
        key = (direction, reason)
        self.mtls_refused[key] = self.mtls_refused.get(key, 0) + 1

    def count_connect_error(self, direction: str, destination: str, address: str) -> None:
        key = (direction, destination, address)
        self.connect_errors[key] = self.connect_errors.get(key, 0) + 1

    def count_rejected(self, direction: str, reason: str) -> None:
        key = (direction, reason)
        self.rejected[key] = self.rejected.get(key, 0) + 1

    def count_refused_connection(self, direction: str) -> None:
        self.refused_connections[direction] += 1

    def render(self, extra: Iterable[str] = ()) -> str:
        out = [
            "# HELP meshui_proxy_upstream_connect_errors_total Failed connects (refused, reset,"
            " timed out) to an upstream instance or the local app.",
            "# TYPE meshui_proxy_upstream_connect_errors_total counter",
        ]
        for (direction, destination, address), n in sorted(self.connect_errors.items()):
            out.append(
                f'meshui_proxy_upstream_connect_errors_total{{direction="{direction}",'
                f'destination="{_label(destination)}",address="{_label(address)}"}} {n}'
            )
        out += [
            "# HELP meshui_proxy_rejected_requests_total Requests refused while their head was"
            " read (400, 408, 413, 414, 431, 501, 500), by listener and x-meshui-error code.",
            "# TYPE meshui_proxy_rejected_requests_total counter",
        ]
        for (direction, reason), n in sorted(self.rejected.items()):
            out.append(
                f'meshui_proxy_rejected_requests_total{{direction="{direction}",reason="{reason}"}} {n}'
            )
        out += [
            "# HELP meshui_proxy_refused_connections_total Client connections answered 503"
            " connection-limit and closed: the listener was at --max-connections.",
            "# TYPE meshui_proxy_refused_connections_total counter",
        ]
        for direction, n in sorted(self.refused_connections.items()):
            out.append(f'meshui_proxy_refused_connections_total{{direction="{direction}"}} {n}')
        out += [
            "# HELP meshui_proxy_active_connections Open connections by side.",
            "# TYPE meshui_proxy_active_connections gauge",
        ]
        for side, n in sorted(self.active_connections.items()):
            out.append(f'meshui_proxy_active_connections{{side="{side}"}} {n}')
        out += _total(RETRIES, self.retries_total)
        out += _total(RETRY_BUDGET_EXHAUSTED, self.retry_budget_exhausted)
        out += _family(OVERFLOWS, "limit", self.overflow)
        out += _total(EJECTIONS, self.ejections_total)
        out += _family(TIMEOUTS, "kind", self.timeouts)
        out += _family(FAULTS, "kind", self.faults)
        name = RATE_LIMITED.prometheus
        out += _header(RATE_LIMITED)
        for direction, counts in (("inbound", self.inbound_rate_limited), ("outbound", self.rate_limited)):
            out += [
                f'{name}{{direction="{direction}",scope="{_label(scope)}"}} {n}'
                for scope, n in sorted(counts.items())
            ]
        out += _total(MTLS, self.mtls_total)
        out += _family(DENIED, "rule", self.denied) if self.denied else _total(DENIED, 0)
        out += _total(AUDIT_DENIED, self.audit_denied)
        out += [
            "# HELP meshui_proxy_mtls_refused_total Connections refused by mutual TLS, by side and"
            " reason (docs/security.md).",
            "# TYPE meshui_proxy_mtls_refused_total counter",
        ]
        for (direction, reason), n in sorted(self.mtls_refused.items()):
            out.append(f'meshui_proxy_mtls_refused_total{{direction="{direction}",reason="{reason}"}} {n}')
        out.extend(line for line in extra if line)
        return "\n".join(out) + "\n"


# The policy families are the edge events' lifetime totals: their names and HELP texts are
# the events' own (proxies.telemetry.events).


def _header(event: EdgeEvent) -> list[str]:
    return [f"# HELP {event.prometheus} {event.description}", f"# TYPE {event.prometheus} counter"]


def _total(event: EdgeEvent, n: int) -> list[str]:
    return [*_header(event), f"{event.prometheus} {n}"]


def _family(event: EdgeEvent, label: str, values: dict[str, int]) -> list[str]:
    name = event.prometheus
    return [*_header(event), *(f'{name}{{{label}="{_label(key)}"}} {n}' for key, n in sorted(values.items()))]
