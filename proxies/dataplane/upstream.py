"""Connections to upstreams (other sidecars' inbound listeners, or the local app) and their pool.

An ``UpstreamConnection`` carries one exchange at a time: it parses the response with the
codec and hands head, body pieces and completion to the ``Exchange`` bound to it; when the
connection fails the exchange, ``proxies.dataplane.endings`` says what happens to it. The
pool keeps a bounded stack of idle keep-alive connections per address; a connection that
closes or errors is dropped, never handed out again. New connections come from the pool's
``Connector``: TCP (``open_tcp``) unless the plane was given another one (tests give fakes).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable

from proxies import http1
from proxies.dataplane import endings
from proxies.dataplane.exchange import Exchange
from proxies.dataplane.interfaces import PAUSE_UPSTREAM_FULL, WRITE_HIGH_WATER, Plane, Upstream
from proxies.dataplane.request_reader import Received
from proxies.dataplane.tls import TlsTransport
from proxies.http1 import HEAD
from proxies.telemetry.tailkeep import KEEP_HEADER
from proxies.traffic.circuit import CircuitBreaker

log = logging.getLogger("proxies.upstream")

MAX_IDLE_PER_ADDRESS = 64
# Response fields never passed on: hop-by-hop ones, and the tail-keep hint between sidecars
# (one set lookup per field, as before it was added).
_STRIPPED = http1.HOP_BY_HOP | {KEEP_HEADER}
CONNECT_TIMEOUT_S = 5.0


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to an upstream address."""

    __slots__ = (
        "pool",
        "breaker",
        "idle_ticks",
        "transport",
        "parser",
        "exchange",
        "received",
        "reading_paused",
        "broken",
        "_reason",
        "_lines",
        "_has_length",
        "_chunked",
        "_tokens",
        "_head_done",
        "_keep_alive",
        "_keep",
    )

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.breaker: CircuitBreaker | None = None  # holds a max_connections slot until closed
        self.idle_ticks = 0  # sweeps since bytes last arrived (DataPlane.sweep_idle)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = http1.ResponseParser(self)
        self.exchange: Exchange | None = None
        self.received = False  # any byte of the current response seen
        self.reading_paused = False
        self.broken = False
        self._reason = b""
        self._lines: list[bytes] = [b""]
        self._has_length = False
        self._chunked = False
        self._tokens: list[bytes] | None = None
        self._head_done = False
        self._keep_alive = True
        self._keep = False  # the response carried x-meshui-keep (tail keep)

    # asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        plane = self.pool.plane
        plane.metrics.active_connections["upstream"] += 1
        plane.upstreams.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        plane = self.pool.plane
        plane.metrics.active_connections["upstream"] -= 1
        plane.upstreams.discard(self)
        breaker = self.breaker
        if breaker is not None:
            self.breaker = None
            breaker.end_connection()
        self.broken = True
        self.pool.discard(self)
        ex = self.exchange
        if ex is not None:
            self.exchange = None
            endings.upstream_lost(ex, self, exc)

    def data_received(self, data: Received) -> None:
        """Parse what was read (for a TLS connection, a view valid only during the call)."""
        ex = self.exchange
        if ex is None:
            # Bytes from an idle connection (or after a HEAD response): the stream is no
            # longer in step with our requests, so it cannot be reused.
            self.close()
            return
        self.received = True
        self.idle_ticks = 0
        try:
            self.parser.feed_data(data)
        except http1.UpgradeRequest:
            self._fail(ex, "upstream switched protocols although we never asked it to")
            return
        except http1.CallbackError as exc:
            log.error("bug while relaying a response", exc_info=exc.__context__ or exc)
            self._fail(ex, "internal error while relaying the response")
            return
        except http1.ParseError as exc:
            self._fail(ex, f"malformed response from upstream: {exc}")
            return
        if self._head_done:
            # llhttp cannot be told that a response answers HEAD (httptools has no
            # F_SKIPBODY hook), so the head completes the message here and the next
            # response gets a fresh parser.
            self._head_done = False
            self.parser = http1.ResponseParser(self)
            if self.exchange is ex:
                ex.on_response_complete(self._keep_alive and not self.broken)
        elif ex.down_pending:
            ex.flush_down()

    def pause_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.downstream.pause(PAUSE_UPSTREAM_FULL)

    def resume_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.downstream.resume(PAUSE_UPSTREAM_FULL)

    # codec callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reason = b""
        self._lines = [b""]
        self._has_length = False
        self._chunked = False
        self._tokens = None
        self._keep = False

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname in _STRIPPED:
            if lname == b"transfer-encoding":
                self._chunked = True
            elif lname == b"connection":
                self._tokens = http1.connection_tokens(value)
            elif lname == KEEP_HEADER:
                self._keep = True
            return
        if lname == b"content-length":
            self._has_length = True
        self._lines += (name, http1.HEADER_SEP, value, http1.CRLF)

    def on_headers_complete(self) -> None:
        ex = self.exchange
        if ex is None:
            self.broken = True
            return
        parser = self.parser
        status = parser.get_status_code()
        if ex.method == HEAD:
            self._head_done = True
            tokens = self._tokens or ()
            self._keep_alive = b"close" not in tokens and (
                parser.get_http_version() == "1.1" or b"keep-alive" in tokens
            )
        if self._keep:
            ex.keep_hinted()
        ex.on_response_head(status, self._reason, self._lines, self._has_length, self._chunked, self._tokens)

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if ex is None or self._head_done:
            self.broken = True  # a body where none may be
            return
        ex.on_response_body(body)

    def on_message_complete(self) -> None:
        ex = self.exchange
        if ex is None or self._head_done:
            return
        if self.parser.get_status_code() < 200:
            return  # interim response: the final one follows on this connection
        ex.on_response_complete(self.parser.should_keep_alive())

    # helpers -----------------------------------------------------------------------------

    def _fail(self, ex: Exchange, reason: str) -> None:
        self.exchange = None
        self.broken = True
        self.close()
        endings.upstream_error(ex, self, reason)

    def close(self) -> None:
        self.broken = True
        self.pool.discard(self)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def abort(self) -> None:
        self.broken = True
        self.exchange = None
        self.pool.discard(self)
        transport = self.transport
        if transport is not None:
            transport.abort()


Connector = Callable[["ConnectionPool"], Awaitable[UpstreamConnection]]


class PeerIdentityError(OSError):
    """The peer's certificate verified, but it is not the destination service's identity."""


async def open_tcp(pool: ConnectionPool) -> UpstreamConnection:
    """A new connection to the pool's address within its connect timeout: mutual TLS to
    another sidecar when this one holds a certificate (the peer must prove it is the
    destination service), plaintext otherwise and to the local app."""
    plane = pool.plane
    identity = plane.identity
    context = identity.client if identity is not None and pool.mesh else None
    if context is None:
        _, conn = await asyncio.wait_for(
            plane.loop.create_connection(lambda: UpstreamConnection(pool), pool.host, pool.port),
            pool.connect_timeout_s,
        )
        return conn
    try:
        conn = await asyncio.wait_for(_open_tls(pool, context), pool.connect_timeout_s)
    except ssl.SSLError:
        plane.metrics.count_mtls_refused("outbound", "handshake")
        raise
    peer = identity.peer_service(conn.transport.get_extra_info("peercert"))  # type: ignore[union-attr]
    if peer != pool.service:
        plane.metrics.count_mtls_refused("outbound", "identity")
        conn.abort()
        raise PeerIdentityError(f"mTLS: {pool.address} is {peer or 'not a mesh service'}, not {pool.service}")
    return conn


async def _open_tls(pool: ConnectionPool, context: ssl.SSLContext) -> UpstreamConnection:
    plane = pool.plane
    _, tls = await plane.loop.create_connection(
        lambda: TlsTransport(plane.loop, context, False, lambda: UpstreamConnection(pool), plane.read_buffer,
                             server_hostname=pool.service),  # SNI: the service, not a host name we check
        pool.host, pool.port,
    )
    try:
        return await tls.handshake
    except asyncio.CancelledError:  # the connect timeout (the handshake future is cancelled too)
        tls.abort()
        raise


class ConnectionPool:
    """Idle keep-alive connections to one upstream address, most recently used first."""

    __slots__ = (
        "plane",
        "connector",
        "service",
        "host",
        "port",
        "address",
        "idle",
        "max_idle",
        "closed",
        "connect_timeout_s",
        "mesh",
    )

    def __init__(
        self,
        plane: Plane,
        host: str,
        port: int,
        max_idle: int = MAX_IDLE_PER_ADDRESS,
        service: str = "",
        connector: Connector = open_tcp,
        mesh: bool = True,
    ) -> None:
        self.plane = plane
        self.connector = connector
        self.mesh = mesh  # another sidecar (mTLS when we can), not the local app
        self.service = service  # whose idle timeout applies
        self.connect_timeout_s = CONNECT_TIMEOUT_S  # the destination's, set before each connect
        self.host = host
        self.port = port
        self.address = f"{host}:{port}"
        self.idle: list[Upstream] = []
        self.max_idle = max_idle
        self.closed = False

    def take_idle(self) -> Upstream | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.broken and not conn.transport.is_closing():
                return conn
        return None

    async def connect(self) -> UpstreamConnection:
        """A new connection from the connector (its own connect timeout: connect_timeout_s)."""
        return await self.connector(self)

    def release(self, conn: Upstream) -> None:
        """Take back a connection whose exchange ended cleanly; keep it if there is room."""
        conn.exchange = None
        conn.received = False
        if conn.reading_paused:
            conn.reading_paused = False
            conn.transport.resume_reading()
        if self.closed or conn.broken or len(self.idle) >= self.max_idle:
            conn.close()
        else:
            conn.idle_ticks = 0
            self.idle.append(conn)

    def discard(self, conn: Upstream) -> None:
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def close(self) -> None:
        """Close idle connections; busy ones are closed when their exchange ends."""
        self.closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()
