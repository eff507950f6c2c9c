"""How an exchange ends when a peer fails it or time runs out: answer, cut the client, or try again.

Functions of an exchange (``proxies.dataplane.exchange``), for either direction, called
where the failure is noticed: the upstream connection (``upstream_lost`` from
``connection_lost``, ``upstream_error`` for a response that does not parse), the
downstream connection (``client_gone``), the plane's idle sweep (``idle_timeout``) and an
outbound request's deadline (``timed_out``). They decide what the client sees: a
sidecar-made error response (``Exchange.answer``, ``proxies.dataplane.errors``), the rest
of a response, or a cut connection. What a failed *try* means is the exchange's own call,
through its hooks ``end_try`` and ``try_failed``: inbound, the local app is unavailable;
outbound, the destination's retry policy decides (``proxies.dataplane.outbound``).
"""

from __future__ import annotations

from proxies.dataplane import errors
from proxies.dataplane.exchange import Exchange
from proxies.dataplane.interfaces import PAUSE_CONNECT, Upstream
from proxies.traffic.retry import RESET, retry_on_fresh_connection


def cut_client(ex: Exchange) -> None:
    """Cut the client mid-response: what arrived goes out, the rest never will."""
    ex.flush_down()
    ex.status = ex.status or 502
    ex.record(True)
    ex.downstream.abort()


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


def upstream_lost(ex: Exchange, conn: Upstream, exc: Exception | None) -> None:
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
        ex.answer(errors.UPSTREAM_INCOMPLETE)
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


def upstream_error(ex: Exchange, conn: Upstream, reason: str) -> None:
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
    ex.answer(errors.upstream_protocol_error(reason))


def idle_timeout(ex: Exchange) -> None:
    """The upstream sent nothing for the idle timeout while ``ex`` waited on it."""
    if ex.finished or ex.response_done:
        return
    ex.plane.metrics.count_timeout("idle", ex.source, ex.destination_service)
    timed_out(ex, "idle")


def timed_out(ex: Exchange, kind: str) -> None:
    """Give up on the upstream: a 504 naming the timeout, or a cut if the response had begun."""
    ex.end_try(False)
    ex.downstream.resume(PAUSE_CONNECT)
    if ex.response_started:
        conn = ex.detach()
        if conn is not None:
            conn.abort()
        cut_client(ex)
        return
    ex.answer(errors.timed_out(kind, ex.destination_service))
