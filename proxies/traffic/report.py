"""What a heartbeat says about the instances this sidecar sends to (docs/control-channel.md).

Per destination service it calls, per instance: the requests it sent there since the
previous report and in all, the balancer's RTT estimate (peak-EWMA, ms), the requests in
flight, whether outlier detection keeps the instance out and until when, and the tries that
failed fast on the destination's full pool. meshui adds the callers' reports up into each
instance's share of its callers' traffic: the load balancer's actual split (issue 9).

Read once per heartbeat from what the data path already keeps on ``Endpoint`` (no work on
the request path): the only state here is each instance's request count at the previous
report, to send the difference. Bounded: at most ``HEARTBEAT_ENDPOINTS_MAX`` instances, the
ejected ones first, then the busiest since the last report; the rest are counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from proxies.mesh.endpoints import Endpoint
from proxies.mesh.schema import HEARTBEAT_ENDPOINTS_MAX
from proxies.traffic.balancer import estimate_s
from proxies.traffic.destination import Destination

Key = tuple[str, str, str, str]


class UpstreamReport:
    """Builds ``state.upstreams``; remembers each instance's count between two reports."""

    __slots__ = ("_sent", "_at", "limit")

    def __init__(self, limit: int = HEARTBEAT_ENDPOINTS_MAX) -> None:
        self._sent: dict[Key, int] = {}  # Endpoint.key -> requests_total at the last report
        self._at: float | None = None  # when the last report was taken (clock seconds)
        self.limit = limit

    def take(self, destinations: Iterable[Destination], now: float, wall: float) -> dict[str, Any]:
        """``{upstreams, upstreams_truncated, upstreams_interval_s}`` as of ``now`` (clock
        seconds; ``wall`` is the same instant in epoch seconds, for ``until``)."""
        previous, sent = self._sent, {}
        rows: list[tuple[tuple[int, int, int, str, str], Destination, Endpoint, int]] = []
        for destination in destinations:
            for endpoint in destination.endpoints:
                total = endpoint.requests_total
                key = endpoint.key
                sent[key] = total
                if not (total or endpoint.outstanding or endpoint.ejected_until or endpoint.overflows):
                    continue  # never called: the sidecar knows the whole mesh, reports what it uses
                before = previous.get(key, 0)
                recent = total - before if total >= before else total
                order = (0 if endpoint.ejected_until else 1, -recent, -endpoint.outstanding,
                         destination.name, endpoint.instance)
                rows.append((order, destination, endpoint, recent))
        rows.sort(key=lambda row: row[0])
        kept = rows[: self.limit]
        by_service: dict[str, dict[str, Any]] = {}
        for _, destination, endpoint, recent in sorted(kept, key=lambda row: row[0][3:]):
            entry = by_service.get(destination.name)
            if entry is None:
                entry = by_service[destination.name] = {
                    "service": destination.name,
                    "overflow": dict(destination.breaker.overflow),
                    "endpoints": [],
                }
            until = endpoint.ejected_until
            entry["endpoints"].append({
                "instance": endpoint.instance,
                "requests": recent,
                "requests_total": endpoint.requests_total,
                "ewma_ms": round(estimate_s(endpoint, now, destination.policy.peak_ewma) * 1000.0, 3),
                "outstanding": endpoint.outstanding,
                "ejected": bool(until),
                "until": round(wall + until - now, 1) if until else None,
                "overflow": endpoint.overflows,
            })
        interval = None if self._at is None else round(now - self._at, 3)
        self._sent, self._at = sent, now
        return {
            "upstreams": list(by_service.values()),
            "upstreams_truncated": len(rows) - len(kept),
            "upstreams_interval_s": interval,
        }
