"""What an exchange does when something fails: answer, cut the client, or try again.

Functions of the exchange (``proxies.exchange``), for either direction, called where the
failure is noticed: the exchange itself (a bad request-target, a limit), the upstream
connection (``connection_lost``, a response that does not parse), the exchange's connect
task, the listener (the client went away) and the plane's idle sweep. They decide what the
client sees: a sidecar-made error response (``proxies.errors``), the rest of a response,
or a cut connection. What a failed *try* means is the exchange's own call, through its
hooks ``end_try`` and ``try_failed``: inbound, the local app is unavailable; outbound, the
destination's retry policy decides, in the last part of this module: another try on
another instance after a backoff, within the attempts, the retry budget and the circuit
breaker's ``max_retries`` (the decisions are ``proxies.traffic.retry``'s), or the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxies.dataplane import errors
from proxies.traffic.circuit import MAX_RETRIES
from proxies.traffic.retry import (
    CONNECT_FAILURE,
    PER_TRY_TIMEOUT,
    RESET,
    backoff_s,
    retry_condition,
    retry_on_fresh_connection,
)

if TYPE_CHECKING:
    from proxies.dataplane.errors import LocalError
    from proxies.dataplane.exchange import Exchange
    from proxies.dataplane.outbound import OutboundExchange
    from proxies.dataplane.upstream import UpstreamConnection

PAUSE_CONNECT = 1  # the listener's pause reason while an upstream connection opens

_HEAD = b"HEAD"


def answer(ex: Exchange, error: LocalError) -> None:
    """Answer with a sidecar-made error response (text/plain, x-meshui-error)."""
    conn = ex.detach()
    if conn is not None:
        conn.close()
    if ex.response_started:
        ex.listener.abort()
        return
    close = errors.must_close(error, ex.request_done, ex.expect_continue, ex.client_keep_alive)
    if close:
        ex.client_keep_alive = False
    status = ex.status = error.status
    ex.response_started = True
    ex.response_done = True
    ex.listener.write(errors.encode(error, head_only=ex.method == _HEAD, close=close))
    ex.record(status >= 500)
    ex.after_response()


def cut_client(ex: Exchange) -> None:
    """Cut the client mid-response: what arrived goes out, the rest never will."""
    ex.flush_down()
    ex.status = ex.status or 502
    ex.record(True)
    ex.listener.abort()


def client_gone(ex: Exchange) -> None:
    """The client connection closed; drop the upstream side and count what happened."""
    if ex.finished:
        return
    ex.finished = True
    conn = ex.detach()
    if conn is not None:
        conn.abort()
    if not ex.response_done and ex.t0:
        if not ex.response_started:
            ex.status = 499  # nginx's "client closed request"
        ex.record(True)


def upstream_lost(ex: Exchange, conn: UpstreamConnection, exc: Exception | None) -> None:
    """The upstream connection closed while ``ex`` was using it."""
    if ex.conn is conn:
        ex.detach()
    if ex.finished or ex.response_done:
        return
    if ex.response_started:
        if ex.eof_body and exc is None:
            ex.on_response_complete(False)
            return
        # Headers are gone already: the only honest signal left is to cut the client.
        cut_client(ex)
        return
    if conn.received:
        ex.end_try(False)
        answer(ex, errors.UPSTREAM_INCOMPLETE)
        return
    replayable = ex.replay is not None
    if retry_on_fresh_connection(ex.conn_reused, ex.retried_fresh, ex.retry_ok, replayable):
        # A pooled connection the upstream had closed: the request never reached an
        # application. Same try, fresh connection to the same instance.
        ex.retried_fresh = True
        ex.resend()
        ex.dispatch(True)
        return
    ex.try_failed(RESET, "connection closed before any response")


def upstream_error(ex: Exchange, conn: UpstreamConnection, reason: str) -> None:
    """The upstream sent what is not an HTTP/1.1 response (the connection is closed)."""
    if ex.conn is conn:
        ex.detach()
    if ex.finished or ex.response_done:
        return
    if ex.response_started:
        cut_client(ex)
        return
    ex.end_try(False)
    ex.tell_outlier_detector(502, True)  # the instance broke the protocol
    answer(ex, errors.upstream_protocol_error(reason))


def connect_failed(ex: Exchange, reason: str, timed_out: bool) -> None:
    """Opening a connection for the current try failed or timed out."""
    endpoint = ex.endpoint
    assert endpoint is not None
    ex.plane.metrics.count_connect_error(ex.direction, ex.destination, endpoint.address)
    ex.try_failed(CONNECT_FAILURE, reason, "connect" if timed_out else None)


def idle_timeout(ex: Exchange) -> None:
    """The upstream sent nothing for the idle timeout while ``ex`` waited on it."""
    if ex.finished or ex.response_done:
        return
    ex.plane.metrics.count_timeout("idle", ex.source, ex.destination)
    timed_out(ex, "idle")


def timed_out(ex: Exchange, kind: str) -> None:
    """Give up on the upstream: a 504 naming the timeout, or a cut if the response had begun."""
    ex.end_try(False)
    ex.listener.resume(PAUSE_CONNECT)
    if ex.response_started:
        conn = ex.detach()
        if conn is not None:
            conn.abort()
        cut_client(ex)
        return
    answer(ex, errors.timed_out(kind, ex.destination))


# an outbound try that failed: another try, or the answer -----------------------------------


def per_try_timeout(ex: OutboundExchange) -> None:
    """The try's timer: no response head in the destination's per-try timeout."""
    ex.try_timer = None
    if ex.finished or ex.response_started:
        return
    conn = ex.detach()
    if conn is not None:
        conn.abort()
    ex.listener.resume(PAUSE_CONNECT)
    ex.try_failed(PER_TRY_TIMEOUT, "per-try timeout", "per-try")


def retry_or_answer(ex: OutboundExchange, error: str, reason: str, timeout_kind: str | None) -> None:
    """An outbound try got no response: tell the detector, then retry or answer."""
    dest = ex.dest
    endpoint = ex.endpoint
    assert dest is not None and endpoint is not None
    if timeout_kind is not None:
        ex.plane.metrics.count_timeout(timeout_kind, ex.source, ex.destination)
    ex.end_try(False)
    ex.tell_outlier_detector(None, True)
    condition = retry_condition(None, error, dest.retries)
    if condition is not None and retry_allowed(ex):
        schedule_retry(ex, condition)
        return
    if timeout_kind is not None:
        answer(ex, errors.timed_out(timeout_kind, dest.name))
        return
    ex.destination_version = ""  # no instance answered (docs/telemetry.md)
    answer(ex, errors.upstream_connect_failure(ex.destination, endpoint.instance, endpoint.address, reason))


def retry_allowed(ex: OutboundExchange) -> bool:
    """Whether one more try fits: replayable, attempts, budget, breaker's max_retries."""
    if ex.replay is None or ex.response_started or ex.finished:
        return False
    dest = ex.dest
    assert dest is not None
    if ex.attempts > dest.retries.attempts:
        return False
    if not dest.budget.can_retry():
        ex.plane.metrics.count_retry_budget_exhausted(ex.source, ex.destination)
        ex.event("retry_budget_exhausted", {"attempt": ex.attempts})
        return False
    if not dest.breaker.try_retry():
        ex.plane.metrics.count_overflow(MAX_RETRIES, ex.source, ex.destination)
        ex.event("overflow", {"limit": MAX_RETRIES})
        return False
    ex.holds_retry = True
    return True


def schedule_retry(ex: OutboundExchange, condition: str) -> None:
    """Count the retry, then try another instance after a backoff with full jitter."""
    dest = ex.dest
    endpoint = ex.endpoint
    assert dest is not None and endpoint is not None
    plane = ex.plane
    dest.budget.on_retry()
    plane.metrics.count_retry(ex.source, ex.destination)
    tried = ex.tried
    if tried is None:
        ex.tried = [endpoint]
    else:
        tried.append(endpoint)
    retry = ex.attempts
    ex.attempts += 1
    ex.event("retry", {"attempt": retry, "reason": condition})
    delay = backoff_s(retry - 1, dest.backoff_base_ms, dest.backoff_max_ms, plane.rng)
    ex.listener.pause(PAUSE_CONNECT)
    ex.waiting = plane.loop.call_later(delay, _retry_now, ex)


def _retry_now(ex: OutboundExchange) -> None:
    ex.waiting = None
    ex.listener.resume(PAUSE_CONNECT)
    if ex.finished or ex.response_started:
        return
    ex.resend()
    ex.start_try()
