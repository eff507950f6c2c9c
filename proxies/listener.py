"""The client side of the data path: one protocol instance per accepted connection.

Used by both data listeners: ``inbound`` (other sidecars or outside callers -> the local
app) and ``outbound`` (the local app -> other services). It parses requests with the
codec, strips hop-by-hop fields while the headers stream in, and hands each request to an
``Exchange`` (an ``OutboundExchange``, with the traffic policy, on the outbound listener).
Requests are answered in order: a pipelined request waits, with reading paused, until the
one before it has been answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from proxies import failures, http1
from proxies.exchange import Exchange
from proxies.outbound import OutboundExchange

if TYPE_CHECKING:
    from proxies.dataplane import DataPlane

log = logging.getLogger("proxies.listener")

PAUSE_CONNECT = 1  # waiting for an upstream connection
PAUSE_PIPELINE = 2  # a request is queued behind the active one
PAUSE_UPSTREAM_FULL = 4  # the upstream's write buffer is full (request body backpressure)

WRITE_HIGH_WATER = 64 * 1024

# Request fields that need a look; everything else is copied through untouched.
_WATCHED = http1.HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"traceparent",
    b"x-meshui-source",
    b"tracestate",
    b"expect",
}
_MAX_HEADERS = http1.MAX_HEADERS


class _TooManyHeaders(Exception):
    pass


class Listener(asyncio.Protocol):
    """One client connection on the inbound or outbound listener."""

    __slots__ = (
        "plane",
        "outbound",
        "direction",
        "transport",
        "parser",
        "feeding",
        "closed",
        "idle_ticks",
        "_exchange_type",
        "paused",
        "_close_after",
        "_active",
        "_reading",
        "_queue",
        "_bad_request",
        "_url",
        "_lines",
        "_host",
        "_fields",
        "_sized_body",
        "_chunked",
        "_tokens",
        "_traceparent",
        "_tracestate",
        "_source",
        "_expect",
    )

    def __init__(self, plane: DataPlane, outbound: bool) -> None:
        self.plane = plane
        self.outbound = outbound
        self.direction = "outbound" if outbound else "inbound"
        self._exchange_type: type[Exchange] = OutboundExchange if outbound else Exchange
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = http1.RequestParser(self)
        self.feeding = False
        self.closed = False
        self.idle_ticks = 0  # sweeps since bytes last arrived (DataPlane.sweep_idle)
        self.paused = 0  # PAUSE_* reasons reading is paused for (a bit set)
        self._close_after = False
        self._active: Exchange | None = None
        self._reading: Exchange | None = None
        self._queue: deque[Exchange] = deque()
        self._bad_request = False
        self.on_message_begin()

    # asyncio callbacks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        plane = self.plane
        plane.metrics.active_connections[self.direction] += 1
        plane.clients.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        plane = self.plane
        plane.metrics.active_connections[self.direction] -= 1
        plane.clients.discard(self)
        active, self._active = self._active, None
        if active is not None:
            failures.client_gone(active)
        while self._queue:
            failures.client_gone(self._queue.popleft())

    def data_received(self, data: bytes) -> None:
        self.feeding = True
        self.idle_ticks = 0
        try:
            self.parser.feed_data(data)
        except http1.UpgradeRequest as exc:
            self.feeding = False
            self._after_upgrade_request(data, exc.args[0] if exc.args else len(data))
            return
        except http1.CallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _TooManyHeaders):
                self._reject(431, "too-many-headers", "too many header fields")
            else:
                log.error("bug while handling a request", exc_info=cause or exc)
                self._reject(500, "internal-error", "the sidecar failed on this request")
        except http1.ParseError as exc:
            self._reject(400, "bad-request", f"malformed request: {exc}")
        finally:
            self.feeding = False
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

    def on_message_begin(self) -> None:
        self._url = b""
        self._lines: list[bytes] = [b""]
        self._host: bytes | None = None
        self._fields = 0
        self._sized_body = False
        self._chunked = False
        self._tokens: list[bytes] | None = None
        self._traceparent: bytes | None = None
        self._tracestate: bytes | None = None
        self._source: bytes | None = None
        self._expect = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # Every field received counts, forwarded or not: the limit is exact, and it bounds
        # what dropped fields accumulate (tracestate joins, Connection tokens). ~20 ns a field
        # (timeit on the 2-core box, ~0.5% of a hop's CPU); counting forwarded fields only
        # through len(self._lines) and a budget lowered per dropped field measured no cheaper.
        fields = self._fields = self._fields + 1
        if fields > _MAX_HEADERS:
            raise _TooManyHeaders
        lname = name.lower()
        if lname in _WATCHED:
            if lname == b"host":
                self._host = value
            elif lname == b"content-length":
                # A body exists only for a length above 0 (llhttp has checked the digits):
                # "Content-Length: 0" leaves a POST retry-safe (proxies.retry).
                self._sized_body = value.strip(b" \t0") != b""
            elif lname == b"traceparent":
                self._traceparent = value
                return  # replaced by ours (our span becomes the parent)
            elif lname == b"tracestate":
                # Re-sent by the exchange only with a valid traceparent (W3C 3.3.1.1). Several
                # fields are one comma-separated list (RFC 9110 5.3), so they are combined.
                tracestate = self._tracestate
                self._tracestate = value if tracestate is None else tracestate + b"," + value
                return
            elif lname == b"x-meshui-source":
                self._source = value
                if self.outbound:
                    return  # replaced by our own service name
            elif lname == b"expect":
                self._expect = value.lower() == b"100-continue"
            else:
                if lname == b"transfer-encoding":
                    self._chunked = True  # llhttp rejects any coding not ending in chunked
                elif lname == b"connection":
                    tokens = http1.connection_tokens(value)
                    self._tokens = tokens if self._tokens is None else self._tokens + tokens
                return
        lines = self._lines
        lines += (name, http1.HEADER_SEP, value, http1.CRLF)

    def on_headers_complete(self) -> None:
        parser = self.parser
        plane = self.plane
        lines = self._lines
        tokens = self._tokens
        if tokens:
            named = {t for t in tokens if t not in (b"close", b"keep-alive")}
            if named:
                lines = http1.drop_named_fields(lines, named, 1)
        http10 = parser.get_http_version() != "1.1"
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
        exchange = self._reading
        if exchange is not None:
            exchange.request_body(body)

    def on_message_complete(self) -> None:
        exchange, self._reading = self._reading, None
        if exchange is not None:
            exchange.request_complete()

    # called by exchanges --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if not transport.is_closing():
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
        self._close()

    def close_after_response(self) -> None:
        self._close_after = True

    def abort(self) -> None:
        """Cut the client connection (after an upstream broke mid-response)."""
        if not self.closed:
            self.transport.abort()

    def exchange_finished(self, exchange: Exchange) -> None:
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
        elif self._bad_request:
            self._reject(400, "bad-request", "malformed request")

    # helpers --------------------------------------------------------------------------------

    def _reject(self, status: int, error: str, message: str) -> None:
        """Answer a request we cannot parse, then close (the byte stream is unusable)."""
        active = self._active
        if active is not None and not active.finished:
            if active.request_done:
                # Answer the request in flight first; the error follows it.
                self._bad_request = True
                self.pause(PAUSE_PIPELINE)
                return
            failures.client_gone(active)
            self.abort()
            return
        self._close_after = True
        self.plane.metrics.count_rejected(self.direction, error)
        self.write(http1.error_response(status, error, message, close=True))
        self._close()

    def _close(self) -> None:
        transport = self.transport
        if not transport.is_closing():
            transport.close()

    def _after_upgrade_request(self, data: bytes, offset: int) -> None:
        # llhttp stops at a request carrying Upgrade. We drop Upgrade (hop-by-hop), so the
        # request is an ordinary one; start a fresh parser for whatever follows it.
        if self._reading is not None:
            self.on_message_complete()
        self.parser = http1.RequestParser(self)
        self.on_message_begin()
        rest = data[offset:]
        if rest:
            self.data_received(rest)
        else:
            active = self._active
            if active is not None and active.up_pending and active.conn is not None:
                active.flush_up()
