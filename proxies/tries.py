"""An outbound request's tries under its destination's traffic policy (docs/policy.md).

Methods of ``Exchange`` that apply the policy, kept apart from the byte streaming in
``proxies.exchange``: rate limit (``_rate_limited``, also used inbound), route and fault
(``_route``, ``_inject``), the circuit breaker (``_admit``), each try's start and end
(``_start_try``, ``_end_try``: the balancer's and outlier detector's feedback), retries
(condition, replayability, budget, ``max_retries``, backoff with full jitter, another
instance) and the request, per-try and idle timeouts. Decisions are the pure modules'
(router, faults, retry, circuit, outlier, balancer); these methods only act on them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from proxies import errors, faults
from proxies.circuit import MAX_REQUESTS, MAX_RETRIES
from proxies.retry import PER_TRY_TIMEOUT, backoff_s, may_replay, retry_condition

if TYPE_CHECKING:
    import asyncio

    from proxies.dataplane import DataPlane
    from proxies.destination import Destination
    from proxies.endpoints import Endpoint
    from proxies.errors import LocalError
    from proxies.listener import Listener
    from proxies.outlier import Ejection
    from proxies.ratelimit import RateLimiter
    from proxies.upstream import UpstreamConnection

PAUSE_CONNECT = 1
EXACT_TIMER_BELOW_S = 1.0  # shorter request timeouts get their own loop timer

_perf = time.perf_counter


class PolicyTries:
    """Mixed into ``Exchange``: everything traffic policy adds to one outbound request."""

    if not TYPE_CHECKING:  # Exchange declares the slots; mypy reads the annotations below
        __slots__ = ()

    if TYPE_CHECKING:  # what Exchange provides (its __slots__ and methods)
        plane: DataPlane
        listener: Listener
        method: bytes
        head: list[bytes]
        has_body: bool
        retry_ok: bool
        source: str
        destination: str
        destination_version: str
        dest: Destination | None
        version: str | None
        endpoint: Endpoint | None
        conn: UpstreamConnection | None
        attempts: int
        tried: list[Endpoint] | None
        replay: list[bytes] | None
        response_started: bool
        response_done: bool
        finished: bool
        status: int
        events: list[tuple[int, str, dict[str, Any]]] | None
        admitted: bool
        started: bool
        holds_retry: bool
        try_t0: float
        try_gen: int
        try_timer: asyncio.TimerHandle | None
        request_timer: asyncio.TimerHandle | None
        deadline: bool
        waiting: asyncio.TimerHandle | None

        def respond_local(self, error: LocalError) -> None: ...
        def flush_down(self) -> None: ...
        def _dispatch(self, fresh: bool) -> None: ...
        def _detach(self) -> UpstreamConnection | None: ...
        def _resend(self) -> None: ...
        def _record(self, error: bool) -> None: ...

    def _route(self, dest: Destination, origin: bytes) -> Any:
        """Rate limit, then route: the version to use and the fault to inject (or None)."""
        plane = self.plane
        limiter = dest.limiter
        if limiter is not None and self._rate_limited(limiter, dest.name, True):
            return None
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
        if router is not None:
            path = origin.split(b"?", 1)[0].decode("latin-1")
            decision = router.route(self.method.decode("latin-1"), path, self._header)
            self.version = decision.version
            retriable = decision.retriable
            fault = decision.fault
        retry_ok = self.retry_ok = retriable and may_replay(self.method, self.has_body, True, dest.retries)
        self.replay = [] if retry_ok else None
        return fault

    def _rate_limited(self, limiter: RateLimiter, service: str, outbound: bool) -> bool:
        """Take a token for this request's caller; without one, answer 429 and say so.

        Outbound: this sidecar's limit on what it sends to ``service`` (the caller is always
        the local service). Inbound: the local service's own limit on its callers, keyed by
        their ``x-meshui-source`` ("unknown" without one), before the local app sees it.
        """
        wait = limiter.admit(self.source)
        if not wait:
            return False
        scope = limiter.rejected_scope or "destination"
        self.plane.metrics.count_rate_limited(scope, outbound, self.source, service)
        self._event("rate_limited", {"scope": scope, "retry_after_s": wait})
        self.respond_local(errors.rate_limited(service, scope, wait))
        return True

    def _header(self, name: bytes) -> bytes | None:
        """A request field by lower-case name, for header match rules (off the common path)."""
        lines = self.head
        for i in range(1, len(lines) - 3, 4):
            if lines[i].lower() == name:
                return lines[i + 2]
        return None

    def _inject(self, dest: Destination, fault: Any) -> None:
        decision = faults.decide(fault, self.plane.rng)
        if decision is None:
            self._admit(dest)
            return
        metrics = self.plane.metrics
        if decision.delay_s:
            metrics.count_fault("delay", self.source, self.destination)
            self._event("fault_injected", {"kind": "delay", "delay_s": decision.delay_s})
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
            self._event("fault_injected", {"kind": "abort", "status": abort_status})
            self.respond_local(errors.fault_abort(abort_status))
            return
        self._admit(dest)

    def _admit(self, dest: Destination) -> None:
        """Circuit breaker, then the first try."""
        if not dest.breaker.try_request():
            self._overflow(MAX_REQUESTS)
            return
        self.admitted = True
        dest.budget.on_request()
        self._start_try()

    def _overflow(self, limit: str) -> None:
        self.plane.metrics.count_overflow(limit, self.source, self.destination)
        self._event("overflow", {"limit": limit})
        self.respond_local(errors.overflow(self.destination, limit))

    def _start_try(self) -> None:
        """Pick an instance (in service, not tried yet when possible) and send the request."""
        dest = self.dest
        assert dest is not None
        candidates = dest.candidates(self.version)
        eligible, _panic = dest.outlier.eligible(candidates)
        events = self.events
        if events is not None and len(eligible) != len(candidates):
            for skipped in candidates:
                if skipped.ejected_until and skipped not in eligible:
                    self._event("endpoint_skipped", {"instance": skipped.instance, "reason": "ejected"})
        tried = self.tried
        endpoint = dest.balancer.pick(eligible, tried or ())
        if endpoint is None:
            self.destination_version = ""
            self.respond_local(errors.no_healthy_upstream(dest.name))
            return
        self.endpoint = endpoint
        self.destination_version = endpoint.version
        self.try_t0 = _perf()
        per_try_s = dest.per_try_s
        if per_try_s is not None:
            self.try_timer = self.plane.loop.call_later(per_try_s, self._on_try_timeout)
        self._dispatch(False)

    def _end_try(self, ok: bool) -> None:
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

    # retries -------------------------------------------------------------------------------

    def _try_failed(self, error: str, reason: str, timeout_kind: str | None = None) -> None:
        """A try of an outbound request got no response: tell the detector, retry or answer."""
        dest = self.dest
        endpoint = self.endpoint
        assert dest is not None and endpoint is not None
        self._end_try(False)
        ejection = dest.outlier.on_result(endpoint, None, True)
        if ejection is not None:
            self._ejected(ejection)
        condition = retry_condition(None, error, dest.retries)
        if condition is not None and self._retry_allowed():
            self._schedule_retry(condition)
            return
        if timeout_kind is not None:
            self.respond_local(errors.timed_out(timeout_kind, dest.name))
            return
        self.destination_version = ""  # no instance answered (docs/telemetry.md)
        self.respond_local(
            errors.upstream_connect_failure(self.destination, endpoint.instance, endpoint.address, reason)
        )

    def _retry_allowed(self) -> bool:
        """Whether one more try fits: replayable, attempts, budget, breaker's max_retries."""
        if self.replay is None or self.response_started or self.finished:
            return False
        dest = self.dest
        assert dest is not None
        if self.attempts > dest.retries.attempts:
            return False
        if not dest.budget.can_retry():
            self.plane.metrics.count_retry_budget_exhausted(self.source, self.destination)
            self._event("retry_budget_exhausted", {"attempt": self.attempts})
            return False
        if not dest.breaker.try_retry():
            self.plane.metrics.count_overflow(MAX_RETRIES, self.source, self.destination)
            self._event("overflow", {"limit": MAX_RETRIES})
            return False
        self.holds_retry = True
        return True

    def _schedule_retry(self, condition: str) -> None:
        dest = self.dest
        assert dest is not None and self.endpoint is not None
        plane = self.plane
        dest.budget.on_retry()
        plane.metrics.count_retry(self.source, self.destination)
        tried = self.tried
        if tried is None:
            self.tried = [self.endpoint]
        else:
            tried.append(self.endpoint)
        retry = self.attempts
        self.attempts += 1
        self._event("retry", {"attempt": retry, "reason": condition})
        delay = backoff_s(retry - 1, dest.backoff_base_ms, dest.backoff_max_ms, plane.rng)
        self.listener.pause(PAUSE_CONNECT)
        self.waiting = plane.loop.call_later(delay, self._retry_now)

    def _retry_now(self) -> None:
        self.waiting = None
        self.listener.resume(PAUSE_CONNECT)
        if self.finished or self.response_started:
            return
        self._resend()
        self._start_try()

    def _ejected(self, ejection: Ejection) -> None:
        self.plane.metrics.count_ejection(self.source, self.destination)
        self._event(
            "ejected",
            {
                "instance": ejection.endpoint.instance,
                "reason": ejection.reason,
                "duration_s": ejection.duration_s,
            },
        )

    def _event(self, name: str, attributes: dict[str, Any]) -> None:
        events = self.events
        if events is not None:
            events.append((time.time_ns(), name, attributes))

    # timeouts ------------------------------------------------------------------------------

    def _on_try_timeout(self) -> None:
        self.try_timer = None
        if self.finished or self.response_started:
            return
        self.plane.metrics.count_timeout("per-try", self.source, self.destination)
        conn = self._detach()
        if conn is not None:
            conn.abort()
        self.listener.resume(PAUSE_CONNECT)
        self._try_failed(PER_TRY_TIMEOUT, "per-try timeout", "per-try")

    def on_request_timeout(self) -> None:
        self.request_timer = None
        self.deadline = False
        if self.finished or self.response_done:
            return
        self.plane.metrics.count_timeout("request", self.source, self.destination)
        self._time_out("request")

    def on_idle_timeout(self) -> None:
        """The upstream sent nothing for the idle timeout while this exchange waited on it."""
        if self.finished or self.response_done:
            return
        self.plane.metrics.count_timeout("idle", self.source, self.destination)
        self._time_out("idle")

    def _time_out(self, kind: str) -> None:
        waiting = self.waiting
        if waiting is not None:
            waiting.cancel()
            self.waiting = None
        self._end_try(False)
        self.listener.resume(PAUSE_CONNECT)
        if self.response_started:
            conn = self._detach()
            if conn is not None:
                conn.abort()
            self.flush_down()
            self._record(True)
            self.listener.abort()
            return
        self.respond_local(errors.timed_out(kind, self.destination))

    def _release(self) -> None:
        """Give back what the request held: timers, the try, breaker slots."""
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
        self._end_try(self.status < 500)
        if self.admitted:
            self.admitted = False
            self.dest.breaker.end_request()  # type: ignore[union-attr]
