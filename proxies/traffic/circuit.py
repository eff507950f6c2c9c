"""Connection-pool circuit breaking per destination: Envoy's four thresholds.

Envoy's ``circuit_breakers.thresholds`` (defaults 1024 connections, 1024 pending requests,
1024 requests, 3 retries): each counts what is live right now; a ``try_*`` over its limit
fails fast (the data path answers 503 with ``x-meshui-overflow: <limit>``) and counts an
overflow by the limit's name, never queueing past the limit. Every successful ``try_*`` is
paired with one ``end_*``. Counts never go negative, so a stray ``end_*`` cannot open room
that is not there. https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/circuit_breaking
"""

from __future__ import annotations

from proxies.policy.schema import CircuitBreaker as CircuitBreakerConfig

MAX_CONNECTIONS = "max_connections"
MAX_PENDING_REQUESTS = "max_pending_requests"
MAX_REQUESTS = "max_requests"
MAX_RETRIES = "max_retries"
LIMITS = (MAX_CONNECTIONS, MAX_PENDING_REQUESTS, MAX_REQUESTS, MAX_RETRIES)


class CircuitBreaker:
    """Live connections, pending requests, requests and retries of one destination."""

    __slots__ = ("config", "connections", "pending", "requests", "retries", "overflow")

    def __init__(self, config: CircuitBreakerConfig) -> None:
        # Replaceable on a policy swap: counts carry over, the new limits apply to the next try.
        self.config = config
        self.connections = 0
        self.pending = 0
        self.requests = 0
        self.retries = 0
        self.overflow = dict.fromkeys(LIMITS, 0)

    def try_connection(self) -> bool:
        """Room for one more upstream connection? Takes it if so."""
        if self.connections >= self.config.max_connections:
            self.overflow[MAX_CONNECTIONS] += 1
            return False
        self.connections += 1
        return True

    def end_connection(self) -> None:
        if self.connections > 0:
            self.connections -= 1

    def try_pending(self) -> bool:
        """Room for one more request waiting for a connection? Takes it if so."""
        if self.pending >= self.config.max_pending_requests:
            self.overflow[MAX_PENDING_REQUESTS] += 1
            return False
        self.pending += 1
        return True

    def end_pending(self) -> None:
        if self.pending > 0:
            self.pending -= 1

    def try_request(self) -> bool:
        """Room for one more request in flight? Takes it if so."""
        if self.requests >= self.config.max_requests:
            self.overflow[MAX_REQUESTS] += 1
            return False
        self.requests += 1
        return True

    def end_request(self) -> None:
        if self.requests > 0:
            self.requests -= 1

    def try_retry(self) -> bool:
        """Room for one more retry in flight? Takes it if so."""
        if self.retries >= self.config.max_retries:
            self.overflow[MAX_RETRIES] += 1
            return False
        self.retries += 1
        return True

    def end_retry(self) -> None:
        if self.retries > 0:
            self.retries -= 1

    def usage(self) -> dict[str, dict[str, int]]:
        """Each limit's live count and threshold, for the admin port's pool usage."""
        config = self.config
        return {
            MAX_CONNECTIONS: {"active": self.connections, "limit": config.max_connections},
            MAX_PENDING_REQUESTS: {"active": self.pending, "limit": config.max_pending_requests},
            MAX_REQUESTS: {"active": self.requests, "limit": config.max_requests},
            MAX_RETRIES: {"active": self.retries, "limit": config.max_retries},
        }
