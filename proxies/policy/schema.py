"""Traffic policy: what the sidecar does per destination service (docs/policy.md).

One document, pushed by the control plane as a ``config`` revision or read from
``--policy FILE`` (YAML or JSON), describes every behaviour per destination service.
Defaults are the anchors' numbers: Linkerd's peak-EWMA, Istio's retry defaults, Envoy's
circuit-breaker thresholds and outlier detection.

This module holds the schema: frozen dataclasses with those defaults, the values they
accept, and ``PolicyError``. The parser that turns a document into a ``Policy`` (or raises
``PolicyError`` naming the offending field, ``services.payments.split``) is
``proxies.policy.parser``. A rejected document never replaces the policy in force.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

LoadBalancer = Literal["peak_ewma", "least_request", "round_robin"]
LOAD_BALANCERS: tuple[str, ...] = get_args(LoadBalancer)
# How a service's inbound listener treats plaintext (docs/security.md): PERMISSIVE takes mutual
# TLS from sidecars and plaintext from callers outside the mesh; STRICT refuses plaintext.
MtlsMode = Literal["PERMISSIVE", "STRICT"]
MTLS_MODES: tuple[str, ...] = get_args(MtlsMode)

# Conditions a retry may be for (Envoy's retry_on vocabulary, the ones HTTP/1.1 has).
RETRY_ON_CONDITIONS = frozenset({"connect-failure", "refused-stream", "reset", "gateway-error"})


class PolicyError(ValueError):
    """A policy document that cannot be applied; ``field`` is the dotted path at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class PeakEwma:
    """Linkerd's defaults: https://linkerd.io/2/features/load-balancing/"""

    default_rtt_ms: float = 30.0
    decay_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """None means no limit. A timed-out request gets 504 naming the timeout."""

    connect_ms: float = 1000.0
    request_ms: float | None = 15000.0  # whole request, all tries included (Envoy's 15 s)
    per_try_ms: float | None = None
    idle_s: float | None = 300.0  # an upstream or client connection with no traffic


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """Retries at most ``percent`` of requests, but always ``min_per_second``, over a window."""

    percent: float = 20.0
    min_per_second: float = 10.0
    window_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Retries:
    attempts: int = 2  # retries after the first try (Istio's meaning)
    retry_on: frozenset[str] = frozenset({"connect-failure", "refused-stream", "gateway-error"})
    statuses: frozenset[int] = frozenset()  # further response statuses to retry
    per_try_timeout_ms: float | None = None  # overrides Timeouts.per_try_ms when set
    backoff_base_ms: float = 25.0
    backoff_max_ms: float = 250.0
    budget: RetryBudget = field(default_factory=RetryBudget)
    retry_non_idempotent: bool = False  # POST/PATCH with a body are retried only if True
    max_buffered_body_bytes: int = 65536


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Envoy's connection-pool thresholds (defaults 1024/1024/1024/3)."""

    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 3


@dataclass(frozen=True, slots=True)
class HealthCheck:
    path: str = "/"
    interval_s: float = 5.0
    timeout_ms: float = 1000.0
    healthy_threshold: int = 1


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """Envoy's semantics and defaults (cluster.OutlierDetection)."""

    consecutive_5xx: int | None = 5
    consecutive_gateway_errors: int | None = None  # off by default, as in Envoy
    interval_s: float = 10.0
    base_ejection_s: float = 30.0
    max_ejection_s: float = 300.0
    max_ejection_percent: float = 10.0
    panic_threshold_percent: float = 50.0
    health_check: HealthCheck | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """All given conditions must hold; an empty match matches everything."""

    path_prefix: str | None = None
    method: str | None = None
    headers: tuple[tuple[str, str], ...] = ()  # (lower-case name, exact value)


@dataclass(frozen=True, slots=True)
class DelayFault:
    fixed_ms: float
    percent: float = 100.0  # share of the route's requests delayed (Istio's default: all)


@dataclass(frozen=True, slots=True)
class AbortFault:
    status: int
    percent: float = 100.0  # share of the route's requests aborted


@dataclass(frozen=True, slots=True)
class Fault:
    delay: DelayFault | None = None
    abort: AbortFault | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """An ordered rule: the first route whose match holds decides split and faults."""

    name: str
    match: Match = field(default_factory=Match)
    split: tuple[tuple[str, float], ...] | None = None  # (version, weight); None: service split
    fault: Fault | None = None  # a route with faults is never retried (as in Istio)


@dataclass(frozen=True, slots=True)
class TokenBucketSpec:
    requests_per_second: float
    burst: float


@dataclass(frozen=True, slots=True)
class RateLimit:
    total: TokenBucketSpec | None = None  # all callers of this destination together
    per_source: TokenBucketSpec | None = None  # each calling service on its own


AuthorizationAction = Literal["ALLOW", "DENY", "AUDIT"]
AUTHORIZATION_ACTIONS: tuple[str, ...] = get_args(AuthorizationAction)
# The source of a caller without a mesh identity (plaintext, PERMISSIVE), as the graph names it.
UNAUTHENTICATED = "unknown"
# Any caller with a mesh identity (an mTLS peer of our trust domain).
ANY_IDENTITY = "*"


@dataclass(frozen=True, slots=True)
class AuthorizationRule:
    """One rule of a destination's authorization (docs/policy.md, "authorization"): it
    matches when every condition given holds; an empty condition matches everything."""

    name: str  # sent in x-meshui-denied: a token
    action: AuthorizationAction
    sources: tuple[str, ...] = ()  # calling services by certificate, "*", or "unknown"
    methods: tuple[str, ...] = ()
    path_prefix: str | None = None
    headers: tuple[tuple[str, str], ...] = ()  # (lower-case name, exact value)


@dataclass(frozen=True, slots=True)
class Authorization:
    """DENY wins, then ALLOW; with no ALLOW rule whatever is not denied is allowed. AUDIT rules
    are ALLOW rules on trial: they enforce nothing, and a request they would deny once
    enforced is counted and recorded (proxies.traffic.authorization)."""

    rules: tuple[AuthorizationRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Mtls:
    """What the destination service's own sidecar accepts (read by that sidecar only)."""

    mode: MtlsMode = "PERMISSIVE"


@dataclass(frozen=True, slots=True)
class ServicePolicy:
    load_balancer: LoadBalancer = "peak_ewma"
    peak_ewma: PeakEwma = field(default_factory=PeakEwma)
    timeouts: Timeouts = field(default_factory=Timeouts)
    retries: Retries = field(default_factory=Retries)
    circuit_breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    outlier_detection: OutlierDetection = field(default_factory=OutlierDetection)
    split: tuple[tuple[str, float], ...] = ()  # () means every version, balanced together
    routes: tuple[Route, ...] = ()
    rate_limit: RateLimit = field(default_factory=RateLimit)
    mtls: Mtls = field(default_factory=Mtls)
    authorization: Authorization = field(default_factory=Authorization)


@dataclass(frozen=True, slots=True)
class Policy:
    """The whole document in force: a revision and a policy per destination service."""

    revision: int = 0
    default: ServicePolicy = field(default_factory=ServicePolicy)
    # Read-only (types.MappingProxyType) so a Policy stays immutable once swapped in.
    services: Mapping[str, ServicePolicy] = field(default_factory=lambda: MappingProxyType({}))

    def for_service(self, name: str) -> ServicePolicy:
        return self.services.get(name, self.default)
