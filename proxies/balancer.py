"""Round-robin choice of an instance, skipping instances cooling off after a failure.

Pure: takes the service's endpoints and the time, returns an endpoint. The cool-off is a
stand-in for outlier detection until traffic policy arrives.
"""

from __future__ import annotations

from proxies.endpoints import Endpoint, ServiceEndpoints

COOLOFF_S = 5.0


def pick(entry: ServiceEndpoints, now: float, exclude: Endpoint | None = None) -> Endpoint | None:
    """The next instance round robin that is not cooling off (and is not ``exclude``).

    When every instance is cooling off we still pick one (Envoy's "panic mode"): failing
    every request would hide an instance that has come back; trying one costs a refused
    connect at worst.
    """
    endpoints = entry.endpoints
    n = len(endpoints)
    if n == 0:
        return None
    start = entry.cursor
    fallback = None
    for i in range(n):
        candidate = endpoints[(start + i) % n]
        if candidate is exclude:
            continue
        if candidate.cooloff_until <= now:
            entry.cursor = (start + i + 1) % n
            return candidate
        if fallback is None or candidate.cooloff_until < fallback.cooloff_until:
            fallback = candidate
    if fallback is not None:
        entry.cursor = (endpoints.index(fallback) + 1) % n
    return fallback


def mark_failed(endpoint: Endpoint, now: float) -> None:
    """Count a failure and keep round robin away from the instance for COOLOFF_S."""
    endpoint.failures += 1
    endpoint.cooloff_until = now + COOLOFF_S


def mark_succeeded(endpoint: Endpoint) -> None:
    endpoint.cooloff_until = 0.0
