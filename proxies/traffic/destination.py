"""The traffic policy of each destination service, compiled for the data path.

A ``Destination`` is what an outbound request reads: the instances (by version), and the
router, balancer, outlier detector, retry budget, rate limiter and circuit breaker built
from the destination's ``ServicePolicy``, plus its timeouts in seconds. The table of them
is rebuilt when the policy or the endpoint set changes and swapped by one reference
(``DataPlane.destinations``); an exchange keeps the ``Destination`` it began with, so a
request in flight finishes on the snapshot it started on (STYLE.md: gunicorn's reload).

Each stateful part carries over to the new snapshot when its own configuration is
unchanged (frozen dataclasses compare by value): a policy edit that only touches timeouts
keeps the split cursors, the retry budget's window and the rate limiter's buckets. The
circuit breaker always carries over, its limits replaced: its counts are of live
connections and requests, which a policy swap does not end. Per-instance state (EWMA,
outlier counters, ejection) lives on ``Endpoint`` and carries over with the instance.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from proxies.mesh.endpoints import Endpoint, EndpointSnapshot, ServiceEndpoints
from proxies.policy.schema import Policy, ServicePolicy
from proxies.traffic.balancer import Balancer, estimate_s, make_balancer
from proxies.traffic.circuit import CircuitBreaker
from proxies.traffic.outlier import OutlierDetector
from proxies.traffic.ratelimit import RateLimiter, limiter_for
from proxies.traffic.retry import RetryBudget
from proxies.traffic.router import Router

Clock = Callable[[], float]


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000.0


class Destination:
    """One destination service's compiled policy and instances (read-only once built)."""

    __slots__ = (
        "name",
        "policy",
        "entry",
        "endpoints",
        "by_version",
        "router",
        "balancer",
        "outlier",
        "budget",
        "limiter",
        "breaker",
        "retries",
        "connect_s",
        "request_s",
        "per_try_s",
        "idle_s",
        "backoff_base_ms",
        "backoff_max_ms",
    )

    router: Router | None
    balancer: Balancer
    outlier: OutlierDetector
    budget: RetryBudget
    limiter: RateLimiter | None
    breaker: CircuitBreaker

    def __init__(
        self,
        entry: ServiceEndpoints,
        policy: ServicePolicy,
        previous: Destination | None,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.name = entry.name
        self.policy = policy
        self.entry = entry
        endpoints = self.endpoints = entry.endpoints
        by_version: dict[str, list[Endpoint]] = {}
        for endpoint in endpoints:
            by_version.setdefault(endpoint.version, []).append(endpoint)
        self.by_version = {v: tuple(e) for v, e in by_version.items()}
        old = previous.policy if previous is not None else None

        # Router: None when there is nothing to decide (no split, no routes), so the common
        # case costs no call and no method/path decoding.
        if not policy.split and not policy.routes:
            self.router = None
        elif (
            previous is not None
            and old is not None
            and (old.split, old.routes) == (policy.split, policy.routes)
        ):
            self.router = previous.router
        else:
            self.router = Router(policy)

        if (
            previous is not None
            and old is not None
            and (old.load_balancer, old.peak_ewma)
            == (
                policy.load_balancer,
                policy.peak_ewma,
            )
        ):
            self.balancer = previous.balancer
        else:
            self.balancer = make_balancer(policy.load_balancer, policy.peak_ewma, clock, rng)

        if previous is not None and old is not None and old.outlier_detection == policy.outlier_detection:
            self.outlier = previous.outlier
        else:
            self.outlier = OutlierDetector(policy.outlier_detection, clock)
        self.outlier.set_hosts(endpoints)

        retries = self.retries = policy.retries
        if previous is not None and old is not None and old.retries.budget == retries.budget:
            self.budget = previous.budget
        else:
            self.budget = RetryBudget(retries.budget, clock)

        self.limiter = limiter_for(
            policy.rate_limit, previous.limiter if previous is not None else None, clock
        )

        if previous is not None:
            self.breaker = previous.breaker
            self.breaker.config = policy.circuit_breaker
        else:
            self.breaker = CircuitBreaker(policy.circuit_breaker)

        timeouts = policy.timeouts
        self.connect_s = timeouts.connect_ms / 1000.0
        self.request_s = _seconds(timeouts.request_ms)
        per_try = (
            retries.per_try_timeout_ms if retries.per_try_timeout_ms is not None else timeouts.per_try_ms
        )
        self.per_try_s = _seconds(per_try)
        self.idle_s = timeouts.idle_s
        self.backoff_base_ms = retries.backoff_base_ms
        self.backoff_max_ms = retries.backoff_max_ms

    def candidates(self, version: str | None) -> tuple[Endpoint, ...]:
        """The instances a request may go to: one version's, or all of them."""
        if version is None:
            return self.endpoints
        return self.by_version.get(version, ())

    def view(self, now: float, idle_connections: Mapping[str, int]) -> dict[str, Any]:
        """Per instance state and pool usage, for the admin port's /endpoints."""
        outlier = self.outlier
        config = self.policy.peak_ewma
        return {
            "load_balancer": self.policy.load_balancer,
            "pool": self.breaker.usage(),
            "overflow": dict(self.breaker.overflow),
            "retry_budget": self.budget.state(),
            "outlier": outlier.counters(),
            "endpoints": [
                {
                    "instance": endpoint.instance,
                    "address": endpoint.address,
                    "version": endpoint.version,
                    "outstanding": endpoint.outstanding,
                    "requests_total": endpoint.requests_total,
                    "ewma_ms": round(estimate_s(endpoint, now, config) * 1000.0, 3),
                    "idle_connections": idle_connections.get(endpoint.address, 0),
                    "overflows": endpoint.overflows,
                    **outlier.state(endpoint),
                }
                for endpoint in self.endpoints
            ],
        }


def compile_destinations(
    policy: Policy,
    snapshot: EndpointSnapshot,
    previous: Mapping[bytes, Destination],
    clock: Clock,
    rng: random.Random,
) -> dict[bytes, Destination]:
    """The table for ``policy`` over ``snapshot``'s services, carrying state from ``previous``.

    Keyed by the host name as it arrives on the wire (bytes), so the hot path never decodes.
    """
    table: dict[bytes, Destination] = {}
    for host, entry in snapshot.by_host.items():
        table[host] = Destination(entry, policy.for_service(entry.name), previous.get(host), clock, rng)
    return table
