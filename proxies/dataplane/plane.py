"""What the data path shares across connections: identity, endpoints, policy, pools, counters.

The traffic policy in force (``PolicyStore``) and the endpoint set (``EndpointRegistry``)
are compiled into one table of ``Destination`` snapshots (``proxies.traffic.destination``), rebuilt
and swapped by reference whenever either changes. A background task (``run``) does what
no request triggers: the outlier detectors' sweeps, idle timeouts, and the active health
checks of destinations that configure them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

from proxies.dataplane import endings, tls
from proxies.dataplane.downstream import FRESH_TICKS, DownstreamConnection
from proxies.dataplane.healthcheck import HealthChecker
from proxies.dataplane.interfaces import Deadline, SpanSource, TelemetrySink
from proxies.dataplane.limits import ListenerLimits
from proxies.dataplane.metrics import ProxyMetrics
from proxies.dataplane.upstream import ConnectionPool, Connector, UpstreamConnection, open_tcp
from proxies.identity.tls import MeshIdentity
from proxies.mesh.endpoints import Endpoint, EndpointRegistry, EndpointSnapshot
from proxies.policy.schema import Policy
from proxies.policy.store import PolicyStore
from proxies.telemetry.tailkeep import TailKeeper, span_attributes
from proxies.telemetry.tracecontext import TraceContext
from proxies.traffic.authorization import Authorizer, authorizer_for
from proxies.traffic.destination import Destination, compile_destinations
from proxies.traffic.ratelimit import RateLimiter, limiter_for

log = logging.getLogger("proxies.dataplane")

DEADLINE_TICK_S = 0.05  # resolution of long request timeouts (see OutboundExchange.begin)
SWEEP_S = 1.0  # background tick: outlier sweeps are due every interval_s, idle timeouts counted in ticks


class DataPlane:
    """Shared state of the inbound and outbound listeners of one sidecar."""

    __slots__ = (
        "loop",
        "service",
        "version",
        "registry",
        "app_endpoint",
        "pools",
        "metrics",
        "telemetry",
        "trace_incoming",
        "trace_sample",
        "span_factory",
        "tail",
        "outbound_extra",
        "policies",
        "destinations",
        "inbound_limiter",
        "inbound_authorizer",
        "limits",
        "clock",
        "rng",
        "connector",
        "identity",
        "inbound_strict",
        "upstreams",
        "clients",
        "health",
        "next_sweep",
        "deadlines",
        "read_buffer",
        "_deadline_timer",
        "_task",
    )

    def __init__(
        self,
        *,
        service: str,
        version: str,
        app: tuple[str, int],
        telemetry: Any,
        trace_incoming: Callable[[str | None, str | None, float], TraceContext],
        trace_sample: float,
        span_factory: Callable[..., Any] | None = None,
        registry: EndpointRegistry | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        policies: PolicyStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        limits: ListenerLimits | None = None,
        connector: Connector = open_tcp,
        tail: TailKeeper | None = None,
        identity: MeshIdentity | None = None,
    ) -> None:
        self.loop = loop or asyncio.get_running_loop()
        # The plane's mutual-TLS connections decrypt into this one buffer, a record at a time,
        # and parse what they read before returning: nothing holds a view of it past the read.
        self.read_buffer = memoryview(bytearray(tls.READ_SIZE))
        self.limits = limits or ListenerLimits()  # what one client connection may use
        self.service = service
        self.version = version
        self.registry = registry or EndpointRegistry()
        self.registry.on_swap(self._prune_pools)
        self.registry.on_swap(self._endpoints_swapped)
        self.policies = policies or PolicyStore()
        self.policies.subscribe(self._policy_swapped)
        self.clock = clock
        self.rng = rng or random.Random()
        self.connector = connector  # how every pool opens a connection (tests inject fakes)
        # The certificate and trust bundle mTLS uses (proxies.identity.tls); None: plaintext only.
        self.identity = identity
        self.inbound_strict = False  # the local service's mtls.mode is STRICT (set by rebuild)
        if identity is not None:
            identity.subscribe(self._identity_changed)
        self.upstreams: set[UpstreamConnection] = set()
        self.clients: set[DownstreamConnection] = set()
        self.health: dict[str, HealthChecker] = {}
        self.next_sweep: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.deadlines: dict[Deadline, float] = {}  # in-flight requests with a long timeout
        self._deadline_timer: asyncio.TimerHandle | None = None
        self.destinations: dict[bytes, Destination] = {}
        self.inbound_limiter: RateLimiter | None = None  # the local service's own rate_limit
        self.inbound_authorizer: Authorizer | None = None  # ... and its authorization rules
        self.app_endpoint = Endpoint(service, "local-app", version, app[0], app[1])
        self.pools: dict[str, ConnectionPool] = {}
        # Policy events per edge go where the telemetry export takes them from; a stand-in
        # telemetry without them (tests) leaves them in ProxyMetrics' own bounded counters.
        self.metrics = ProxyMetrics(getattr(telemetry, "edge_counters", None))
        self.telemetry: TelemetrySink = telemetry
        self.trace_incoming = trace_incoming
        self.trace_sample = trace_sample
        self.span_factory = span_factory
        # Tail keep (proxies.telemetry.tailkeep): unsampled requests go to its ring; None: off.
        self.tail = tail
        self.outbound_extra: tuple[bytes, ...] = (b"x-meshui-source: %b\r\n" % service.encode("ascii"),)
        self.rebuild()

    def downstream_factory(self, outbound: bool) -> Callable[[], DownstreamConnection]:
        """The protocol factory of the inbound (False) or outbound (True) listener."""
        return lambda: DownstreamConnection(self, outbound)

    def pool_for(self, endpoint: Endpoint) -> ConnectionPool:
        pool = self.pools.get(endpoint.address)
        if pool is None or pool.closed:
            pool = self.pools[endpoint.address] = ConnectionPool(
                self, endpoint.host, endpoint.port, service=endpoint.service, connector=self.connector,
                mesh=endpoint is not self.app_endpoint,
            )
        return pool

    # policy -------------------------------------------------------------------------------

    def rebuild(self) -> None:
        """Compile the policy in force over the endpoints in force; swap the table and the inbound limiter."""
        policy = self.policies.policy
        self.destinations = compile_destinations(
            policy, self.registry.snapshot, self.destinations, self.clock, self.rng
        )
        # Inbound, the local service applies its own policy's rate limit to its callers.
        own = policy.for_service(self.service)
        self.inbound_limiter = limiter_for(own.rate_limit, self.inbound_limiter, self.clock)
        self.inbound_authorizer = authorizer_for(own.authorization, self.inbound_authorizer)
        strict = own.mtls.mode == "STRICT"
        if strict and not self.inbound_strict:
            self._close_plaintext_clients()
        self.inbound_strict = strict
        self._sync_health_checks()

    def _close_plaintext_clients(self) -> None:
        """STRICT took effect: plaintext inbound connections go (each after its request in
        flight, like an idle timeout); callers reconnect over mTLS or are refused."""
        for client in list(self.clients):
            if not client.outbound and client.peer is None:
                if client.idle():
                    client.close_idle()
                else:
                    client.close_after_response()

    def _identity_changed(self, identity: MeshIdentity, became_ready: bool) -> None:
        """mTLS just became possible (or impossible): pooled connections to other sidecars
        were opened the other way, so they go; new ones use the identity in force."""
        if became_ready or not identity.ready:
            for address, pool in list(self.pools.items()):
                if pool.mesh:
                    self.pools.pop(address).close()

    def _endpoints_swapped(self, old: EndpointSnapshot, new: EndpointSnapshot) -> None:
        self.rebuild()

    def _policy_swapped(self, old: Policy, new: Policy) -> None:
        self.rebuild()
        log.info("policy revision %d in force", new.revision)

    def destination(self, name: str) -> Destination | None:
        return self.destinations.get(name.encode("ascii"))

    def _sync_health_checks(self) -> None:
        """One active health checker per destination whose policy asks for one."""
        wanted: dict[str, HealthChecker] = {}
        for dest in self.destinations.values():
            config = dest.policy.outlier_detection.health_check
            if config is None:
                continue
            current = self.health.get(dest.name)
            if current is not None and current.detector is dest.outlier and current.config == config:
                wanted[dest.name] = current
            else:
                wanted[dest.name] = HealthChecker(dest.outlier, config)
        for name, checker in self.health.items():
            if wanted.get(name) is not checker:
                checker.cancel()
        self.health = wanted
        if self._task is not None:
            for checker in wanted.values():
                checker.start()

    # background ---------------------------------------------------------------------------

    def watch_deadline(self, exchange: Deadline, timeout_s: float) -> None:
        """Time ``exchange`` out after ``timeout_s`` (to within DEADLINE_TICK_S) unless it ends first."""
        loop = self.loop
        self.deadlines[exchange] = loop.time() + timeout_s
        if self._deadline_timer is None:
            self._deadline_timer = loop.call_later(DEADLINE_TICK_S, self._check_deadlines)

    def _check_deadlines(self) -> None:
        self._deadline_timer = None
        deadlines = self.deadlines
        now = self.loop.time()
        expired = [exchange for exchange, at in deadlines.items() if at <= now]
        for exchange in expired:
            del deadlines[exchange]
            exchange.on_request_timeout()
        if deadlines:
            self._deadline_timer = self.loop.call_later(DEADLINE_TICK_S, self._check_deadlines)

    def start(self) -> None:
        """Start the periodic sweep and the health checks (needs the running loop)."""
        if self._task is None:
            self._task = self.loop.create_task(self.run(), name="dataplane-sweep")
            for checker in self.health.values():
                checker.start()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                self.sweep()
            except Exception:  # loop boundary: one bad sweep must not end them all
                log.exception("data plane sweep failed")

    def sweep(self) -> None:
        """One tick: outlier sweeps that are due, then idle timeouts."""
        now = self.clock()
        due = self.next_sweep
        for dest in self.destinations.values():
            at = due.get(dest.name)
            if at is None:
                due[dest.name] = now + dest.policy.outlier_detection.interval_s
            elif now >= at:
                due[dest.name] = now + dest.policy.outlier_detection.interval_s
                dest.outlier.sweep()
        self.sweep_idle()
        if self.identity is not None:
            self.identity.expire()
        if self.tail is not None:
            self.tail.sweep()

    def sweep_idle(self) -> None:
        """Close connections with no traffic for their idle timeout; a waiting request gets 504."""
        by_name = {d.name: d.idle_s for d in self.destinations.values()}
        for conn in list(self.upstreams):
            idle_s = by_name.get(conn.pool.service)
            if idle_s is None:
                continue
            conn.idle_ticks += 1
            if conn.idle_ticks * SWEEP_S >= idle_s:
                exchange = conn.exchange
                if exchange is not None:
                    endings.idle_timeout(exchange)
                else:
                    conn.close()
        # Client connections: the sidecar's --client-idle-timeout, or the policy's default
        # idle_s when that is shorter (docs/policy.md).
        limits = self.limits
        client_idle = limits.client_idle_timeout_s
        policy_idle = self.policies.policy.default.timeouts.idle_s
        if policy_idle is not None and policy_idle < client_idle:
            client_idle = policy_idle
        ticks = math.ceil(client_idle / SWEEP_S)
        silent_ticks = FRESH_TICKS + math.ceil(limits.header_timeout_s / SWEEP_S)
        for client in list(self.clients):
            idle_ticks = client.idle_ticks = client.idle_ticks + 1
            if idle_ticks < 0:
                # Not a byte since accept: a connection held open for nothing gets the header
                # timeout too (no request to answer 408, so it is just closed).
                if idle_ticks >= silent_ticks:
                    self.metrics.count_timeout("header")
                    client.close_idle()
            elif idle_ticks >= ticks and client.idle():
                self.metrics.count_timeout("idle")
                client.close_idle()

    def _prune_pools(self, old: EndpointSnapshot, new: EndpointSnapshot) -> None:
        """Close idle connections to addresses that left the endpoint set."""
        live = {e.address for entry in new.services.values() for e in entry.endpoints}
        live.add(self.app_endpoint.address)
        for address in [a for a in self.pools if a not in live]:
            self.pools.pop(address).close()

    def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        for checker in self.health.values():
            checker.cancel()
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()

    def record_span(self, exchange: SpanSource, error: bool) -> None:
        """Hand a sampled request's span to telemetry (off the common path: ~1% of requests)."""
        factory = self.span_factory
        if factory is None:
            return
        try:
            trace = exchange.trace
            span = factory(
                trace_id=trace.trace_id,
                span_id=trace.span_id,
                parent_span_id=trace.parent_span_id,
                name=f"{exchange.method.decode('latin-1')} {exchange.destination_service}",
                kind="client" if exchange.outbound else "server",
                start_ns=exchange.start_ns,
                end_ns=time.time_ns(),
                attributes=span_attributes(
                    exchange.method, exchange.target, exchange.host, exchange.status,
                    exchange.destination_service, exchange.destination_version,
                    None if exchange.endpoint is None else exchange.endpoint.address,
                ),
                error=error,
                **({"events": tuple(exchange.events)} if exchange.events else {}),
            )
            self.telemetry.record_span(span)
        except Exception:
            log.exception("could not record a span")

