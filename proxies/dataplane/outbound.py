"""An outbound request under its destination's traffic policy (docs/policy.md).

``OutboundExchange`` is the exchange the outbound listener creates. Its ``begin`` reads
in the policy's order: find the destination, rate limit, request timeout, route (version,
fault), fault, circuit breaker, then the first try. The tries and the retries are its
base class's (``proxies.dataplane.outbound_tries``); the streaming is ``Exchange``'s.
Decisions are the pure modules' (``proxies.traffic``: router, faults, retry, circuit,
outlier, balancer); these methods only act on them. Timers (request, per-try, backoff,
fault delay) are loop timers, cancelled when the exchange records its outcome
(``record``).

Calls to the base class name it (``Exchange.record(self, ...)``) rather than ``super()``:
on Python 3.11 a zero-argument ``super()`` builds a proxy object per call, and the three
such calls per request measured ~0.45 µs of a ~13 µs in-process request (an outbound
keep-alive request through fake sockets, min of 30 timings).
"""

from __future__ import annotations

import asyncio

from proxies import http1
from proxies.dataplane import endings, errors
from proxies.dataplane.exchange import Exchange
from proxies.dataplane.interfaces import PAUSE_CONNECT, Downstream
from proxies.dataplane.outbound_tries import OutboundTries
from proxies.policy.schema import Fault
from proxies.telemetry.tracecontext import TraceContext
from proxies.traffic import faults
from proxies.traffic.circuit import MAX_REQUESTS
from proxies.traffic.destination import Destination
from proxies.traffic.retry import may_replay

EXACT_TIMER_BELOW_S = 1.0  # shorter request timeouts get their own loop timer

# The destination recorded for an outbound request that reached no registered service
# (CONNECT, a bad request-target, no host, a host that is not in the endpoint set): one
# node for "calls going nowhere", like Istio's BlackHoleCluster, instead of a self-edge or
# one ghost node (and one label value) per typo or external host. docs/telemetry.md.
UNREGISTERED = "unregistered"


class OutboundExchange(OutboundTries):
    """One request from the local app to another service, under that service's policy."""

    outbound = True
    direction = "outbound"

    __slots__ = ("admitted", "request_timer", "deadline")

    def __init__(
        self, downstream: Downstream, method: bytes, target: bytes, host: bytes | None, head: list[bytes],
        chunked_req: bool, has_body: bool, client_keep_alive: bool, http10: bool, expect_continue: bool,
        trace: TraceContext, source: str, source_sidecar: bool,
    ) -> None:  # fmt: skip
        Exchange.__init__(
            self, downstream, method, target, host, head, chunked_req, has_body, client_keep_alive,
            http10, expect_continue, trace, source, source_sidecar,
        )  # fmt: skip
        self.destination_service = UNREGISTERED  # until routing finds a registered service
        self.destination_version = ""
        # OutboundTries' fields (see its docstring), then this class's own
        self.destination = None
        self.version = None
        self.attempts = 1
        self.tried = None
        self.started = False
        self.holds_retry = False
        self.try_t0 = 0.0
        self.try_timer = None
        self.waiting = None
        self.admitted = False  # holds a circuit-breaker request slot
        self.request_timer: asyncio.TimerHandle | None = None
        self.deadline = False  # watched by the plane's coarse deadline tick

    # admission -----------------------------------------------------------------------------

    def begin(self) -> None:
        """Find the destination, then apply its policy in order up to the first try."""
        origin = self._origin_form()
        if origin is None:
            return
        plane = self.plane
        if self.host is None:
            self.answer(errors.NO_DESTINATION)
            return
        name = http1.host_name(self.host)
        dest = plane.destinations.get(name)
        if dest is None:
            snapshot = plane.registry.snapshot
            self.answer(errors.unknown_service(name.decode("latin-1"), snapshot.known))
            return
        self.destination_service = dest.name
        self.destination = dest
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

    def _inject(self, dest: Destination, fault: Fault) -> None:
        decision = faults.decide(fault, self.plane.rng)
        if decision is None:
            self._admit(dest)
            return
        metrics = self.plane.metrics
        if decision.delay_s:
            metrics.count_fault("delay", self.source, self.destination_service)
            self.event("fault_injected", {"kind": "delay", "delay_s": decision.delay_s})
            self.downstream.pause(PAUSE_CONNECT)
            self.waiting = self.plane.loop.call_later(
                decision.delay_s, self._after_delay, dest, decision.abort_status
            )
            return
        self._after_delay(dest, decision.abort_status)

    def _after_delay(self, dest: Destination, abort_status: int | None) -> None:
        self.waiting = None
        self.downstream.resume(PAUSE_CONNECT)
        if self.finished or self.response_started:
            return
        if abort_status is not None:
            self.plane.metrics.count_fault("abort", self.source, self.destination_service)
            self.event("fault_injected", {"kind": "abort", "status": abort_status})
            self.answer(errors.fault_abort(abort_status))
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

    # timeouts and the end ------------------------------------------------------------------

    def on_request_timeout(self) -> None:
        """The whole request (all tries and backoff) ran out of time: a 504, or a cut."""
        self.request_timer = None
        self.deadline = False
        if self.finished or self.response_done:
            return
        self.plane.metrics.count_timeout("request", self.source, self.destination_service)
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
            self.destination.breaker.end_request()  # type: ignore[union-attr]
        Exchange.record(self, error)
