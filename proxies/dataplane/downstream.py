"""The client side of the data path: one ``DownstreamConnection`` per accepted connection.

Used by both data listeners: ``inbound`` (other sidecars or outside callers -> the local
app) and ``outbound`` (the local app -> other services). It parses requests with the
codec, strips hop-by-hop fields while the headers stream in, and hands each request to an
exchange: an ``InboundExchange`` (``inbound``) or an ``OutboundExchange`` (``outbound``,
with the traffic policy). Requests are answered in order: a pipelined request waits,
with reading paused, until the one before it has been answered.

It is also the data path's front door (docs/sidecar.md, "Limits"): the listener's limits
(``proxies.dataplane.limits``) are enforced while a head streams in, before anything is
buffered past them; a refused request is answered with ``connection: close`` and nothing
more is read from its connection, so no request hidden behind it can reach an upstream.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from proxies import http1
from proxies.dataplane import endings, errors
from proxies.dataplane.errors import LocalError
from proxies.dataplane.exchange import Exchange
from proxies.dataplane.inbound import InboundExchange
from proxies.dataplane.interfaces import PAUSE_PIPELINE, WRITE_HIGH_WATER, Plane
from proxies.dataplane.outbound import OutboundExchange
from proxies.dataplane.request_reader import _NOT_IN_HEAD, TRAILERS, Received, RequestReader, _Refused

log = logging.getLogger("proxies.listener")

# idle_ticks of a connection that has not sent a byte yet counts up from here
# (DataPlane.sweep_idle closes it after the header timeout).
FRESH_TICKS = -(1 << 30)
LINGER_S = 2.0  # a closing connection discards what still arrives for this long (_close)
LINGER_BYTES = 256 * 1024  # or until this much: then it is closed at once (a flood)


class DownstreamConnection(RequestReader):
    """One client connection on the inbound or outbound listener."""

    __slots__ = (
        "plane",
        "outbound",
        "direction",
        "transport",
        "feeding",
        "closed",
        "refused",
        "idle_ticks",
        "_exchange_type",
        "peer",
        "paused",
        "_active",
        "_reading",
        "_queue",
        "_refusal",
        "_head_timer",
        "_eof",
        "_discarded",
    )

    def __init__(self, plane: Plane, outbound: bool) -> None:
        self.plane = plane
        self.outbound = outbound
        self.direction = "outbound" if outbound else "inbound"
        self._exchange_type: type[Exchange] = OutboundExchange if outbound else InboundExchange
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.feeding = False
        self.closed = False
        self.refused = False  # answered connection-limit at accept: never counted as open
        self.peer: str | None = None  # inbound over mTLS: the calling service, from its certificate
        self.idle_ticks = FRESH_TICKS  # sweeps since bytes last arrived (DataPlane.sweep_idle)
        self.paused = 0  # PAUSE_* reasons reading is paused for (a bit set)
        self._active: Exchange | None = None
        self._reading: Exchange | None = None
        self._queue: deque[Exchange] = deque()
        self._refusal: LocalError | None = None  # answered once the requests before it are
        self._head_timer: asyncio.TimerHandle | None = None  # armed while a head is incomplete
        self._eof = False  # FIN sent (_close): nothing more is written
        self._discarded = 0  # bytes read and dropped since (a lingering close)
        RequestReader.__init__(self, plane.limits)

    # asyncio callbacks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        plane = self.plane
        metrics = plane.metrics
        if not self.outbound:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None and not self._authenticated(ssl_object):
                return
        if metrics.active_connections[self.direction] >= plane.limits.max_connections:
            # Refused unread: the fd goes back at once, so the admin listener keeps accepting.
            self.refused = self._close_after = self._stopped = True
            metrics.count_refused_connection(self.direction)
            self.transport.write(errors.encode(errors.CONNECTION_LIMIT, head_only=False, close=True))
            self.transport.close()
            return
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        metrics.active_connections[self.direction] += 1
        plane.clients.add(self)

    def _authenticated(self, ssl_object: Any) -> bool:
        """An mTLS connection (the chain was verified in the handshake): the caller is the
        service its SPIFFE ID names; one without a mesh identity of our trust domain goes."""
        identity = self.plane.identity
        peer = None if identity is None else identity.peer_service(ssl_object.getpeercert())
        if peer is None:
            self.refused = self._close_after = self._stopped = True
            self.plane.metrics.count_mtls_refused("inbound", "identity")
            self.transport.abort()
            return False
        self.peer = peer
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.refused:
            return
        self._stop_header_timer()
        plane = self.plane
        plane.metrics.active_connections[self.direction] -= 1
        plane.clients.discard(self)
        active, self._active = self._active, None
        if active is not None:
            endings.client_gone(active)
        while self._queue:
            endings.client_gone(self._queue.popleft())

    def data_received(self, data: Received) -> None:
        """Parse what was read (for a TLS connection, a view valid only during the call)."""
        if self._stopped:
            # Closing: nothing more is parsed; a lingering close discards up to LINGER_BYTES.
            if self._eof:
                self._discarded += len(data)
                if self._discarded > LINGER_BYTES:
                    self._close_now()
            return
        self.feeding = True
        self.idle_ticks = 0
        # RequestReader._feed_counted inlined: one subtraction a read on the common path.
        # All the front-door checks cost a keep-alive POST through fake sockets ~0.3 µs (min
        # of 5 interleaved runs of 15 x 20,000: inbound 8.99 -> 9.31, outbound 12.30 -> 12.55
        # µs), ~1% of a hop; calling _feed_counted here measured ~0.5 µs more.
        left = self._head_left - len(data)
        if left >= 0:
            self._head_left = left
            stopped: Exception | None
            try:
                self.parser.feed_data(data)
                stopped = None
            except (http1.ParseError, http1.UpgradeRequest) as exc:
                stopped = exc
            if stopped is not None:  # outside the except block: see RequestReader._feed
                self._parse_stopped(stopped, data)
        else:
            self._feed_bounded(data)
        self.feeding = False
        if self._head_left < self._head_budget and self._head_timer is None and not self._stopped:
            # A head is incomplete at the end of a read: the one case that needs a timer (a
            # small request arrives in one read, so the common path arms none).
            self._head_timer = self.plane.loop.call_later(
                self.plane.limits.header_timeout_s, self._header_timed_out
            )
        active = self._active
        if active is not None and active.up_pending and active.conn is not None:
            active.flush_up()

    def pause_writing(self) -> None:
        # The client reads slower than the upstream sends: stop reading the upstream.
        active = self._active
        if active is not None:
            conn = active.conn
            if conn is not None and not conn.reading_paused:
                conn.reading_paused = True
                conn.transport.pause_reading()

    def resume_writing(self) -> None:
        active = self._active
        if active is not None:
            conn = active.conn
            if conn is not None and conn.reading_paused:
                conn.reading_paused = False
                conn.transport.resume_reading()

    # codec callbacks ------------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._head_left = _NOT_IN_HEAD
        if self._head_timer is not None:
            self._stop_header_timer()
        parser = self.parser
        plane = self.plane
        lines = self._lines
        self._lines = TRAILERS  # the exchange owns the fields now
        http10 = parser.get_http_version() != "1.1"
        if http10:
            self._check_version()
        if self._tokens or self._chunked:
            lines = self._checked_fields(lines, http10)
        if self._host is None and not self.outbound and (not http10 or self._url[:1] == b"/"):
            # Inbound: an HTTP/1.1 request without Host is a 400 (RFC 9112 §3.2), absolute-form
            # too; an origin-form one goes to the app as HTTP/1.1, which needs one. Outbound,
            # no Host is the no-destination answer (proxies.dataplane.outbound).
            raise _Refused(errors.bad_request("no Host field"))
        if self._max_body and (self._chunked or self._sized_body):
            self._start_body_count(lines)
        traceparent = self._traceparent
        tracestate = self._tracestate
        trace = plane.trace_incoming(
            traceparent.decode("latin-1") if traceparent is not None else None,
            tracestate.decode("latin-1") if tracestate is not None else None,
            plane.trace_sample,
        )
        source = self._source
        if self.outbound:
            source_name, source_sidecar = plane.service, True
        elif self.peer is not None:
            # Authenticated by its certificate: the x-meshui-source header cannot say otherwise.
            source_name, source_sidecar = self.peer, True
            plane.metrics.count_mtls(source_name, plane.service)
        elif source is not None:
            source_name, source_sidecar = source.decode("latin-1"), True
        else:
            source_name, source_sidecar = "unknown", False
        exchange = self._exchange_type(
            self,
            parser.get_method(),
            self._url,
            self._host,
            lines,
            self._chunked,
            self._chunked or self._sized_body,
            parser.should_keep_alive() and not http10,
            http10,
            self._expect,
            trace,
            source_name,
            source_sidecar,
        )
        self._reading = exchange
        if self._active is None:
            self._active = exchange
            exchange.begin()
        else:
            self._queue.append(exchange)
            self.pause(PAUSE_PIPELINE)

    def on_body(self, body: bytes) -> None:
        if self._body_left >= 0:
            self._count_body(len(body))
        exchange = self._reading
        if exchange is not None:
            exchange.request_body(body)

    def on_message_complete(self) -> None:
        self._head_left = self._head_budget
        self._url = b""
        exchange, self._reading = self._reading, None
        if exchange is not None:
            exchange.request_complete()

    # called by exchanges --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if not self._eof and not transport.is_closing():
            transport.write(data)

    def pause(self, reason: int) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.closed:
                self.transport.resume_reading()

    def idle(self) -> bool:
        """No request in progress or queued: the connection may be closed without loss."""
        return self._active is None and not self._queue and self._reading is None

    def close_idle(self) -> None:
        """Close a keep-alive connection that sat idle past the idle timeout."""
        self._close_after = self._stopped = True
        self._close()

    def close_after_response(self) -> None:
        self._close_after = self._stopped = True

    def abort(self) -> None:
        """Cut the client connection (after an upstream broke mid-response)."""
        self._close_after = self._stopped = True
        if not self.closed:
            self.transport.abort()

    def exchange_finished(self, exchange: object) -> None:
        if self._active is not exchange:
            return
        self._active = None
        if self._close_after:
            self._queue.clear()
            self._close()
            return
        if self._queue:
            following = self._active = self._queue.popleft()
            if not self._queue:
                self.resume(PAUSE_PIPELINE)
            following.begin()
        elif self._refusal is not None:
            self._reject(self._refusal)

    # refusals -------------------------------------------------------------------------------

    def _reject(self, error: LocalError) -> None:
        """Refuse the request being read: answer ``error`` with close, then read nothing more.

        Requests before it are answered first, in order; the request itself, if its head had
        already become an exchange (a malformed body), is answered with the error when no
        response has begun (its upstream connection is closed), or cut otherwise.
        """
        self._stop_header_timer()
        self._stopped = True
        if self._close_after:
            return  # the connection closes after what was already answered: nothing to add
        refused, self._reading = self._reading, None
        metrics = self.plane.metrics
        if refused is not None:
            if refused is self._active:
                if refused.response_done:
                    # Answered before its body turned out malformed: close after that answer.
                    refused.finished = True
                    self._active = None
                    self._close_after = True
                    self._close()
                    return
                if refused.response_started:
                    endings.client_gone(refused)
                    self.abort()
                    return
                metrics.count_rejected(self.direction, error.code)
                refused.answer(error)  # error.close: the connection closes after it
                return
            if refused in self._queue:
                self._queue.remove(refused)  # queued, never begun: nothing went upstream
                refused.finished = True
        active = self._active
        if active is not None and not active.finished:
            self._refusal = error  # answered by exchange_finished once the queue is done
            self.pause(PAUSE_PIPELINE)
            return
        self._close_after = True
        metrics.count_rejected(self.direction, error.code)
        self.write(errors.encode(error, head_only=False, close=True))
        self._close()

    def _header_timed_out(self) -> None:
        self._head_timer = None
        if self.closed or self._stopped or self._head_left >= self._head_budget:
            return
        if self.paused:
            # Reading is paused by the sidecar itself (a connect, a queued request): the
            # client cannot send the rest yet, so its time does not run.
            self._head_timer = self.plane.loop.call_later(
                self.plane.limits.header_timeout_s, self._header_timed_out
            )
            return
        self.plane.metrics.count_timeout("header")
        self._reject(errors.HEADER_TIMEOUT)

    def _stop_header_timer(self) -> None:
        timer = self._head_timer
        if timer is not None:
            self._head_timer = None
            timer.cancel()

    def _close(self) -> None:
        """Close after what was written: a lingering close (nginx's lingering_close).

        The sidecar sends FIN after its last response and discards what still arrives until
        the client closes too, LINGER_S passes or LINGER_BYTES arrive. Closing with unread bytes (a pipelined
        request behind a refused one) would send a reset instead, which can destroy the
        response, a 400 say, before the client reads it.
        """
        self._stopped = True
        transport = self.transport
        if self._eof or transport.is_closing():
            return
        if self.closed or not transport.can_write_eof():
            transport.close()
            return
        self._eof = True
        transport.write_eof()
        if self.paused:
            self.paused = 0
            transport.resume_reading()  # to discard, so the kernel never answers with a reset
        self.plane.loop.call_later(LINGER_S, self._close_now)

    def _close_now(self) -> None:
        transport = self.transport
        if not transport.is_closing():
            transport.close()

    def _after_upgrade_request(self, data: Received, offset: int) -> None:
        # llhttp stops at a request carrying Upgrade (or CONNECT). We drop Upgrade
        # (hop-by-hop), so the request is an ordinary one (on_headers_complete refused one
        # with a body); start a fresh parser for whatever follows it.
        if self._reading is not None:
            self.on_message_complete()
        else:
            self._head_left = self._head_budget
            self._url = b""
        if self._stopped:
            return  # CONNECT was refused: what follows it is never parsed
        self.parser = http1.RequestParser(self)
        self.on_message_begin()
        rest = data[offset:]
        if rest:
            self._feed_counted(rest)

