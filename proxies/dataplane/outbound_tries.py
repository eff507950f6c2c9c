"""The tries of an outbound exchange, and all of its retry logic (docs/policy.md, "Retries").

A try is one attempt on one instance: pick it (outlier-eligible instances first, then the
balancer, never one already tried when another is left), send on a pooled or new
connection within the circuit breaker's pool limits, and end at the response head, where
the balancer and the outlier detector hear how it went. A failed try (a retryable status,
a connect failure, a reset, a per-try timeout) goes again on another instance after a
backoff with full jitter, within the policy's attempts, the retry budget and the
breaker's ``max_retries``; otherwise it is answered.

``OutboundTries`` is the part of ``OutboundExchange`` (``proxies.dataplane.outbound``,
which adds the steps before the first try and the end) that the try-and-retry cycle is.
It is never created on its own, and its fields are set by ``OutboundExchange.__init__``:
one ``__init__`` per request, since a chained one would cost a Python call.
"""

from __future__ import annotations

import asyncio
import time

from proxies.dataplane import errors
from proxies.dataplane.exchange import Exchange
from proxies.dataplane.interfaces import PAUSE_CONNECT, PAUSE_UPSTREAM_FULL, Pool, Upstream
from proxies.mesh.endpoints import Endpoint
from proxies.traffic.circuit import MAX_CONNECTIONS, MAX_PENDING_REQUESTS, MAX_RETRIES
from proxies.traffic.destination import Destination
from proxies.traffic.outlier import Ejection
from proxies.traffic.retry import PER_TRY_TIMEOUT, backoff_s, retry_condition

_perf = time.perf_counter


class OutboundTries(Exchange):
    """Tries of one request on the instances of its destination (see the module docstring)."""

    __slots__ = (
        # the destination's policy snapshot and the version routing chose
        "destination", "version",
        # the tries
        "attempts", "tried", "started", "holds_retry", "try_t0", "try_timer", "waiting",
    )  # fmt: skip

    destination: Destination | None
    version: str | None  # None: any version of the destination
    attempts: int  # tries so far, this one included
    tried: list[Endpoint] | None  # instances that failed a try, avoided by the next pick
    started: bool  # the balancer was told a try started (on_start)
    holds_retry: bool  # holds a circuit-breaker retry slot
    try_t0: float
    try_timer: asyncio.TimerHandle | None
    waiting: asyncio.TimerHandle | None  # a retry's backoff, or a fault delay

    def start_try(self) -> None:
        """Pick an instance (in service, not tried yet when possible) and send the request."""
        dest = self.destination
        assert dest is not None
        candidates = dest.candidates(self.version)
        eligible, _panic = dest.outlier.eligible(candidates)
        if len(eligible) != len(candidates) and (self.events is not None or self.plane.tail is not None):
            for skipped in candidates:
                if skipped.ejected_until and skipped not in eligible:
                    self.event("endpoint_skipped", {"instance": skipped.instance, "reason": "ejected"})
        tried = self.tried
        endpoint = dest.balancer.pick(eligible, tried or ())
        if endpoint is None:
            self.destination_version = ""
            self.answer(errors.no_healthy_upstream(dest.name))
            return
        self.endpoint = endpoint
        self.destination_version = endpoint.version
        self.try_t0 = _perf()
        per_try_s = dest.per_try_s
        if per_try_s is not None:
            self.try_timer = self.plane.loop.call_later(per_try_s, self._per_try_timed_out)
        self.dispatch(False)

    def _reserve_connect(self, pool: Pool) -> bool:
        """Envoy's pool limits on a new connection, failing fast instead of queueing past them."""
        dest = self.destination
        assert dest is not None
        breaker = dest.breaker
        if not breaker.try_pending():
            self.endpoint.overflows += 1  # type: ignore[union-attr]  # picked by start_try
            self._overflow(MAX_PENDING_REQUESTS)
            return False
        if not breaker.try_connection():
            breaker.end_pending()
            self.endpoint.overflows += 1  # type: ignore[union-attr]
            self._overflow(MAX_CONNECTIONS)
            return False
        pool.connect_timeout_s = dest.connect_s
        return True

    def _connect_settled(self, conn: Upstream | None) -> None:
        dest = self.destination
        assert dest is not None
        breaker = dest.breaker
        breaker.end_pending()
        if conn is None:
            breaker.end_connection()
        else:
            conn.breaker = breaker  # the connection holds its slot until it closes

    def _attach(self, conn: Upstream, reused: bool) -> None:
        """Bind ``conn``; the balancer counts the try as started from its first connection."""
        self.conn = conn
        self.conn_reused = reused
        conn.exchange = self
        if not self.started:
            dest = self.destination
            endpoint = self.endpoint
            assert dest is not None and endpoint is not None
            self.started = True
            dest.balancer.on_start(endpoint)
        if not self.downstream.feeding:
            self.flush_up()

    def detach(self) -> Upstream | None:
        """Unbind the connection (an outbound try's load is the balancer's to count)."""
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.exchange = None
            downstream = self.downstream
            if downstream.paused & PAUSE_UPSTREAM_FULL:  # no longer applies (rare: skip the call)
                downstream.resume(PAUSE_UPSTREAM_FULL)
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
            dest = self.destination
            assert dest is not None
            ok = status < 500
            self.end_try(ok)
            ejection = dest.outlier.on_result(self.endpoint, status, False)  # type: ignore[arg-type]
            if ejection is not None:
                self._ejected(ejection)
            if not ok or dest.retries.statuses:
                condition = retry_condition(status, None, dest.retries)
                if condition is not None and self._retry_allowed():
                    conn = self.detach()
                    if conn is not None:
                        conn.abort()  # its body is of no use; a fresh connection is cheaper to reason about
                    self._schedule_retry(condition)
                    return
        Exchange.on_response_head(self, status, reason, lines, has_length, chunked, tokens)

    def end_try(self, ok: bool) -> None:
        """The current try is over: stop its timer, tell the balancer, free its retry slot."""
        timer = self.try_timer
        if timer is not None:
            timer.cancel()
            self.try_timer = None
        self.try_gen += 1
        dest = self.destination
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
        """A try got no response: tell the detector, then retry or answer."""
        dest = self.destination
        endpoint = self.endpoint
        assert dest is not None and endpoint is not None
        if timeout_kind is not None:
            self.plane.metrics.count_timeout(timeout_kind, self.source, self.destination_service)
        self.end_try(False)
        self.tell_outlier_detector(None, True)
        condition = retry_condition(None, error, dest.retries)
        if condition is not None and self._retry_allowed():
            self._schedule_retry(condition)
            return
        if timeout_kind is not None:
            self.answer(errors.timed_out(timeout_kind, dest.name))
            return
        self.destination_version = ""  # no instance answered (docs/telemetry.md)
        service = self.destination_service
        self.answer(errors.upstream_connect_failure(service, endpoint.instance, endpoint.address, reason))

    def _per_try_timed_out(self) -> None:
        """The try's timer: no response head in the destination's per-try timeout."""
        self.try_timer = None
        if self.finished or self.response_started:
            return
        conn = self.detach()
        if conn is not None:
            conn.abort()
        self.downstream.resume(PAUSE_CONNECT)
        self.try_failed(PER_TRY_TIMEOUT, "per-try timeout", "per-try")

    def _retry_allowed(self) -> bool:
        """Whether one more try fits: replayable, attempts, budget, breaker's max_retries."""
        if self.replay is None or self.response_started or self.finished:
            return False
        dest = self.destination
        assert dest is not None
        if self.attempts > dest.retries.attempts:
            return False
        if not dest.budget.can_retry():
            self.plane.metrics.count_retry_budget_exhausted(self.source, self.destination_service)
            self.event("retry_budget_exhausted", {"attempt": self.attempts})
            return False
        if not dest.breaker.try_retry():
            self.plane.metrics.count_overflow(MAX_RETRIES, self.source, self.destination_service)
            self.event("overflow", {"limit": MAX_RETRIES})
            return False
        self.holds_retry = True
        return True

    def _schedule_retry(self, condition: str) -> None:
        """Count the retry, then try another instance after a backoff with full jitter."""
        dest = self.destination
        endpoint = self.endpoint
        assert dest is not None and endpoint is not None
        plane = self.plane
        dest.budget.on_retry()
        plane.metrics.count_retry(self.source, self.destination_service)
        tried = self.tried
        if tried is None:
            self.tried = [endpoint]
        else:
            tried.append(endpoint)
        retry = self.attempts
        self.attempts += 1
        self.event("retry", {"attempt": retry, "reason": condition})
        delay = backoff_s(retry - 1, dest.backoff_base_ms, dest.backoff_max_ms, plane.rng)
        self.downstream.pause(PAUSE_CONNECT)
        self.waiting = plane.loop.call_later(delay, self._retry_now)

    def _retry_now(self) -> None:
        self.waiting = None
        self.downstream.resume(PAUSE_CONNECT)
        if self.finished or self.response_started:
            return
        self.resend()
        self.start_try()

    def tell_outlier_detector(self, status: int | None, gateway_error: bool) -> None:
        """Count the try's outcome on its instance, and the ejection it caused, if any."""
        dest = self.destination
        endpoint = self.endpoint
        assert dest is not None and endpoint is not None
        ejection = dest.outlier.on_result(endpoint, status, gateway_error)
        if ejection is not None:
            self._ejected(ejection)

    def _ejected(self, ejection: Ejection) -> None:
        self.plane.metrics.count_ejection(self.source, self.destination_service)
        self.event(
            "ejected",
            {
                "instance": ejection.endpoint.instance,
                "reason": ejection.reason,
                "duration_s": ejection.duration_s,
            },
        )

    def _overflow(self, limit: str) -> None:
        self.plane.metrics.count_overflow(limit, self.source, self.destination_service)
        self.event("overflow", {"limit": limit})
        self.answer(errors.overflow(self.destination_service, limit))
