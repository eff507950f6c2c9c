"""In-process counters for the admin port's Prometheus text.

The hot path does one dict update per request; rendering happens only on scrape.
"""

from __future__ import annotations

from collections.abc import Iterable


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class ProxyMetrics:
    """Requests by (direction, destination, status), connect errors, open connections."""

    __slots__ = ("requests", "connect_errors", "active_connections", "requests_total")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.connect_errors: dict[tuple[str, str, str], int] = {}
        self.active_connections = {"inbound": 0, "outbound": 0, "upstream": 0}
        self.requests_total = 0

    def count_request(self, direction: str, destination: str, status: int) -> None:
        key = (direction, destination, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        self.requests_total += 1

    def count_connect_error(self, direction: str, destination: str, address: str) -> None:
        key = (direction, destination, address)
        self.connect_errors[key] = self.connect_errors.get(key, 0) + 1

    def render(self, extra: Iterable[str] = ()) -> str:
        out = [
            "# HELP meshui_proxy_responses_total Responses returned, by direction, destination"
            " service and status returned to the caller (sidecar-made errors included).",
            "# TYPE meshui_proxy_responses_total counter",
        ]
        for (direction, destination, status), n in sorted(self.requests.items()):
            out.append(
                f'meshui_proxy_responses_total{{direction="{direction}",'
                f'destination="{_label(destination)}",status="{status}"}} {n}'
            )
        out += [
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
            "# HELP meshui_proxy_active_connections Open connections by side.",
            "# TYPE meshui_proxy_active_connections gauge",
        ]
        for side, n in sorted(self.active_connections.items()):
            out.append(f'meshui_proxy_active_connections{{side="{side}"}} {n}')
        out.extend(line for line in extra if line)
        return "\n".join(out) + "\n"
