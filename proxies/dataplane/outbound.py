"""An outbound request under its destination's traffic policy (docs/policy.md).

``OutboundExchange`` is the ``Exchange`` the outbound listener creates. Its ``begin``
reads in the policy's order: find the destination, rate limit, request timeout, route
(version, fault), fault, circuit breaker, then the first try: pick an instance
(outlier-eligible ones, then the balancer) and send, with a per-try timeout. A try ends
at the response head (``end_try``), where the balancer and the outlier detector hear how
it went. A failed try (a retryable status here, no response in ``proxies.dataplane.endings``) is
tried again on another instance after a backoff, within the retry budget and the
breaker's ``max_retries``.

The streaming is the base class's; this class fills in its policy hooks. Decisions are
the pure modules' (router, faults, retry, circuit, outlier, balancer); these methods only
act on them. Timers (request, per-try, backoff, fault delay) are loop timers, cancelled
when the exchange records its outcome (``record``).

Calls to the base class name it (``Exchange.record(self, ...)``) rather than ``super()``:
on Python 3.11 a zero-argument ``super()`` builds a proxy object per call, and the three
such calls per request measured ~0.45 µs of a ~13 µs in-process request (an outbound
keep-alive request through fake sockets, min of 30 timings).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from proxies import http1
from proxies.dataplane import endings, errors
from proxies.dataplane.exchange import PAUSE_CONNECT, PAUSE_UPSTREAM_FULL, Exchange
from proxies.traffic import faults
from proxies.traffic.circuit import MAX_CONNECTIONS, MAX_PENDING_REQUESTS, MAX_REQUESTS
from proxies.traffic.retry import may_replay, retry_condition

if TYPE_CHECKING:
    import asyncio

    from proxies.dataplane.downstream import Listener
    from proxies.dataplane.upstream import ConnectionPool, UpstreamConnection
    from proxies.mesh.endpoints import Endpoint
    from proxies.traffic.destination import Destination
    from proxies.traffic.outlier import Ejection

EXACT_TIMER_BELOW_S = 1.0  # shorter request timeouts get their own loop timer

# The destination recorded for an outbound request that reached no registered service
# (CONNECT, a bad request-target, no host, a host that is not in the endpoint set): one
# node for "calls going nowhere", like Istio's BlackHoleCluster, instead of a self-edge or
# one ghost node (and one label value) per typo or external host. docs/telemetry.md.
UNREGISTERED = "unregistered"

_perf = time.perf_counter


class OutboundExchange(Exchange):
    """One request from the local app to another service, under that service's policy."""

    outbound = True
    direction = "outbound"

    __slots__ = (
        # the destination's policy snapshot and what routing chose
        "dest", "version", "admitted", "request_timer", "deadline", "waiting",
        # the tries
        "attempts", "tried", "started", "holds_retry", "try_t0", "try_timer",
    )  # fmt: skip

    def __init__(
        self,
        listener: Listener,
        method: bytes,
        target: bytes,
        host: bytes | None,
        head: list[bytes],
        chunked_req: bool,
        has_body: bool,
        client_keep_alive: bool,
        http10: bool,
        expect_continue: bool,
        trace: Any,
        source: str,
        source_sidecar: bool,
    ) -> None:
        Exchange.__init__(
            self,
            listener,
            method,
            target,
            host,
            head,
            chunked_req,
            has_body,
            client_keep_alive,
            http10,
            expect_continue,
            trace,
            source,
            source_sidecar,
        )
        self.destination = UNREGISTERED  # until routing finds a registered service
        self.destination_version = ""
        self.dest: Destination | None = None
        self.version: str | None = None
        self.attempts = 1
        self.tried: list[Endpoint] | None = None
        self.admitted = False  # holds a circuit-breaker request slot
        self.started = False  # the balancer was told a try started (on_start)
        self.holds_retry = False  # holds a circuit-breaker retry slot
        self.try_t0 = 0.0
        self.try_timer: asyncio.TimerHandle | None = None
        self.request_timer: asyncio.TimerHandle | None = None
        self.deadline = False  # watched by the plane's coarse deadline tick
        self.waiting: asyncio.TimerHandle | None = None  # backoff or fault delay

    # admission -----------------------------------------------------------------------------

    def begin(self) -> None:
        """Find the destination, then apply its policy in order up to the first try."""
        origin = self._origin_form()
        if origin is None:
            return
        plane = self.plane
        if self.host is None:
            endings.answer(self, errors.NO_DESTINATION)
            return
        name = http1.host_name(self.host)
        dest = plane.destinations.get(name)
        if dest is None:
            snapshot = plane.registry.snapshot
            endings.answer(self, errors.unknown_service(name.decode("latin-1"), snapshot.known))
            return
        self.destination = dest.name
        self.dest = dest
        limiter = dest.limiter
        if limiter is not None and self._rate_limited(limiter, dest.name, True):
            return
        request_s = dest.request_s
        if request_s is not None:
            if request_s < EXACT_TIMER_BELOW_S:
                self.request_timer = plane.loop.call_later(request_s, self.on_request_timeout)
            else:
                # A loop timer per request costs ~6 µs of a ~30 µs hop (uvloop arms and closes
                # a libuv handle each time; bench/sidecar_hop.py); a long timeout is checked by
                # the plane's coarse deadline tick instead (DataPlane.watch_deadline).
                self.deadline = True
                plane.watch_deadline(self, request_s)
        retriable = True
        fault = None
        router = dest.router
        if router is not None:  # None when there is no split and no route (no call, no decoding)
            path = origin.split(b"?", 1)[0].decode("latin-1")
            decision = router.route(self.method.decode("latin-1"), path, self._header)
            self.version = decision.version
            retriable = decision.retriable
            fault = decision.fault
        retry_ok = self.retry_ok = retriable and may_replay(self.method, self.has_body, True, dest.retries)
        self.replay = [] if retry_ok else None
        self.head += plane.outbound_extra  # after the router read the client's fields
        trace = self.trace
        head = http1.request_head(
            self.head, self.method, origin, trace.traceparent(), trace.tracestate, self.chunked_req
        )
        self.up_pending.insert(0, head)
        self.replay_limit = dest.retries.max_buffered_body_bytes + len(head)
        if fault is not None:
            self._inject(dest, fault)
        else:
            self._admit(dest)

    def _header(self, name: bytes) -> bytes | None:
        """A request field by lower-case name, for header match rules (off the common path)."""
        return http1.field_value(self.head, name)

    def _inject(self, dest: Destination, fault: Any) -> None:
        decision = faults.decide(fault, self.plane.rng)
        if decision is None:
            self._admit(dest)
            return
        metrics = self.plane.metrics
        if decision.delay_s:
            metrics.count_fault("delay", self.source, self.destination)
            self.event("fault_injected", {"kind": "delay", "delay_s": decision.delay_s})
            self.listener.pause(PAUSE_CONNECT)
            self.waiting = self.plane.loop.call_later(
                decision.delay_s, self._after_delay, dest, decision.abort_status
            )
            return
        self._after_delay(dest, decision.abort_status)

    def _after_delay(self, dest: Destination, abort_status: int | None) -> None:
        self.waiting = None
        self.listener.resume(PAUSE_CONNECT)
        if self.finished or self.response_started:
            return
        if abort_status is not None:
            self.plane.metrics.count_fault("abort", self.source, self.destination)
            self.event("fault_injected", {"kind": "abort", "status": abort_status})
            endings.answer(self, errors.fault_abort(abort_status))
            return
        self._admit(dest)

    def _admit(self, dest: Destination) -> None:
        """Circuit breaker, then the first try."""
        if not dest.breaker.try_request():
            self._overflow(MAX_REQUESTS)
            return
        self.admitted = True
        dest.budget.on_request()
        self.start_try()

    def _overflow(self, limit: str) -> None:
        self.plane.metrics.count_overflow(limit, self.source, self.destination)
        self.event("overflow", {"limit": limit})
        endings.answer(self, errors.overflow(self.destination, limit))

    # tries ---------------------------------------------------------------------------------

    def start_try(self) -> None:
        """Pick an instance (in service, not tried yet when possible) and send the request."""
        dest = self.dest
        assert dest is not None
        candidates = dest.candidates(self.version)
        eligible, _panic = dest.outlier.eligible(candidates)
        events = self.events
        if events is not None and len(eligible) != len(candidates):
            for skipped in candidates:
                if skipped.ejected_until and skipped not in eligible:
                    self.event("endpoint_skipped", {"instance": skipped.instance, "reason": "ejected"})
        tried = self.tried
        endpoint = dest.balancer.pick(eligible, tried or ())
        if endpoint is None:
            self.destination_version = ""
            endings.answer(self, errors.no_healthy_upstream(dest.name))
            return
        self.endpoint = endpoint
        self.destination_version = endpoint.version
        self.try_t0 = _perf()
        per_try_s = dest.per_try_s
        if per_try_s is not None:
            self.try_timer = self.plane.loop.call_later(per_try_s, endings.per_try_timeout, self)
        self.dispatch(False)

    def _reserve_connect(self, pool: ConnectionPool) -> bool:
        """Envoy's pool limits on a new connection, failing fast instead of queueing past them."""
        dest = self.dest
        assert dest is not None
        breaker = dest.breaker
        if not breaker.try_pending():
            self._overflow(MAX_PENDING_REQUESTS)
            return False
        if not breaker.try_connection():
            breaker.end_pending()
            self._overflow(MAX_CONNECTIONS)
            return False
        pool.connect_timeout_s = dest.connect_s
        return True

    def _connect_settled(self, conn: UpstreamConnection | None) -> None:
        dest = self.dest
        assert dest is not None
        breaker = dest.breaker
        breaker.end_pending()
        if conn is None:
            breaker.end_connection()
        else:
            conn.breaker = breaker  # the connection holds its slot until it closes

    def _attach(self, conn: UpstreamConnection, reused: bool) -> None:
        """Bind ``conn``; the balancer counts the try as started from its first connection."""
        self.conn = conn
        self.conn_reused = reused
        conn.exchange = self
        if not self.started:
            dest = self.dest
            endpoint = self.endpoint
            assert dest is not None and endpoint is not None
            self.started = True
            dest.balancer.on_start(endpoint)
        if not self.listener.feeding:
            self.flush_up()

    def detach(self) -> UpstreamConnection | None:
        """Unbind the connection (an outbound try's load is the balancer's to count)."""
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.exchange = None
            listener = self.listener
            if listener.paused & PAUSE_UPSTREAM_FULL:  # no longer applies (rare: skip the call)
                listener.resume(PAUSE_UPSTREAM_FULL)
        return conn

    def on_response_head(
        self,
        status: int,
        reason: bytes,
        lines: list[bytes],
        has_length: bool,
        chunked: bool,
        tokens: list[bytes] | None,
    ) -> None:
        if status >= 200:
            # The try ends at the response head (Linkerd's peak-EWMA measures to the head).
            dest = self.dest
            assert dest is not None
            ok = status < 500
            self.end_try(ok)
            ejection = dest.outlier.on_result(self.endpoint, status, False)  # type: ignore[arg-type]
            if ejection is not None:
                self._ejected(ejection)
            if not ok or dest.retries.statuses:
                condition = retry_condition(status, None, dest.retries)
                if condition is not None and endings.retry_allowed(self):
                    conn = self.detach()
                    if conn is not None:
                        conn.abort()  # its body is of no use; a fresh connection is cheaper to reason about
                    endings.schedule_retry(self, condition)
                    return
        Exchange.on_response_head(self, status, reason, lines, has_length, chunked, tokens)

    def end_try(self, ok: bool) -> None:
        """The current try is over: stop its timer, tell the balancer, free its retry slot."""
        timer = self.try_timer
        if timer is not None:
            timer.cancel()
            self.try_timer = None
        self.try_gen += 1
        dest = self.dest
        if dest is None:
            return
        if self.started:
            self.started = False
            dest.balancer.on_finish(self.endpoint, _perf() - self.try_t0, ok)  # type: ignore[arg-type]
        if self.holds_retry:
            self.holds_retry = False
            dest.breaker.end_retry()

    # failed tries ---------------------------------------------------------------------------

    def try_failed(self, error: str, reason: str, timeout_kind: str | None = None) -> None:
        """A try got no response: the retry policy decides (``endings.retry_or_answer``)."""
        endings.retry_or_answer(self, error, reason, timeout_kind)

    def tell_outlier_detector(self, status: int | None, gateway_error: bool) -> None:
        """Count the try's outcome on its instance, and the ejection it caused, if any."""
        dest = self.dest
        endpoint = self.endpoint
        assert dest is not None and endpoint is not None
        ejection = dest.outlier.on_result(endpoint, status, gateway_error)
        if ejection is not None:
            self._ejected(ejection)

    def _ejected(self, ejection: Ejection) -> None:
        self.plane.metrics.count_ejection(self.source, self.destination)
        self.event(
            "ejected",
            {
                "instance": ejection.endpoint.instance,
                "reason": ejection.reason,
                "duration_s": ejection.duration_s,
            },
        )

    # timeouts and the end ------------------------------------------------------------------

    def on_request_timeout(self) -> None:
        """The whole request (all tries and backoff) ran out of time: a 504, or a cut."""
        self.request_timer = None
        self.deadline = False
        if self.finished or self.response_done:
            return
        self.plane.metrics.count_timeout("request", self.source, self.destination)
        waiting = self.waiting
        if waiting is not None:  # a backoff or a fault delay
            waiting.cancel()
            self.waiting = None
        endings.timed_out(self, "request")

    def record(self, error: bool) -> None:
        """Give back what the request held (timers, the try, breaker slots), then record it."""
        timer = self.request_timer
        if timer is not None:
            timer.cancel()
            self.request_timer = None
        if self.deadline:
            self.deadline = False
            self.plane.deadlines.pop(self, None)
        timer = self.waiting
        if timer is not None:
            timer.cancel()
            self.waiting = None
        if self.started or self.holds_retry or self.try_timer is not None:
            self.end_try(self.status < 500)
        else:
            # The common case: the try ended at the response head, so only a connect still
            # under way must go stale. Skipping the call saves ~0.05 µs a request (in-process
            # timing of an outbound keep-alive request through fake sockets).
            self.try_gen += 1
        if self.admitted:
            self.admitted = False
            self.dest.breaker.end_request()  # type: ignore[union-attr]
        Exchange.record(self, error)
