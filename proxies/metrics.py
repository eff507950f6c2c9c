"""In-process counters for the admin port's Prometheus text: connect errors, rejected requests,
open connections.

Requests are counted once, by telemetry (``meshui_proxy_requests_total``, rendered by
``proxies.telemetry.prometheus``); these are what telemetry does not see. Rendering
happens only on scrape.
"""

from __future__ import annotations

from collections.abc import Iterable

# What the listener answers itself while parsing (the x-meshui-error codes): these requests
# never become an exchange, so telemetry does not count them.
REJECT_REASONS = ("bad-request", "too-many-headers", "internal-error")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class ProxyMetrics:
    """Connect errors, requests rejected while parsing, and open connections by side."""

    __slots__ = ("connect_errors", "rejected", "active_connections")

    def __init__(self) -> None:
        self.connect_errors: dict[tuple[str, str, str], int] = {}
        # Every series exists from the start, so rate() sees the first rejection.
        self.rejected = {
            (direction, reason): 0 for direction in ("inbound", "outbound") for reason in REJECT_REASONS
        }
        self.active_connections = {"inbound": 0, "outbound": 0, "upstream": 0}

    def count_connect_error(self, direction: str, destination: str, address: str) -> None:
        key = (direction, destination, address)
        self.connect_errors[key] = self.connect_errors.get(key, 0) + 1

    def count_rejected(self, direction: str, reason: str) -> None:
        key = (direction, reason)
        self.rejected[key] = self.rejected.get(key, 0) + 1

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
            "# HELP meshui_proxy_rejected_requests_total Requests answered 400, 431 or 500 while"
            " being parsed, by listener and x-meshui-error code.",
            "# TYPE meshui_proxy_rejected_requests_total counter",
        ]
        for (direction, reason), n in sorted(self.rejected.items()):
            out.append(
                f'meshui_proxy_rejected_requests_total{{direction="{direction}",reason="{reason}"}} {n}'
            )
        out += [
            "# HELP meshui_proxy_active_connections Open connections by side.",
            "# TYPE meshui_proxy_active_connections gauge",
        ]
        for side, n in sorted(self.active_connections.items()):
            out.append(f'meshui_proxy_active_connections{{side="{side}"}} {n}')
        out.extend(line for line in extra if line)
        return "\n".join(out) + "\n"
