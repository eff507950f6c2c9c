"""The inbound listener: mutual TLS from other sidecars and, when allowed, plaintext, on one port.

As Istio's permissive mode does, the first byte of a new connection tells a TLS handshake
(a TLS record of type handshake, 0x16) from an HTTP request (a method's first letter). The
listener accepts connections itself, peeks at that byte (MSG_PEEK: nothing is consumed) and
only then hands the socket to the event loop, with the sidecar's server TLS context or
without one. Everything after that is the data path's (``DownstreamConnection``), which
reads the peer's verified identity from the transport.

What is refused, and counted by reason (``meshui_proxy_mtls_refused_total{direction="inbound"}``):

- ``plaintext``: a plaintext connection to a service whose ``mtls.mode`` is ``STRICT``; it
  is answered 403 ``mtls-required`` in plaintext, so a person with curl learns why;
- ``handshake``: a TLS handshake that failed: no client certificate, one from another CA,
  expired, or not TLS at all after the first byte;
- ``no_identity``: a TLS handshake while this sidecar holds no certificate yet;
- ``identity``: a verified certificate without a mesh SPIFFE ID of our trust domain
  (``DownstreamConnection.connection_made``);
- ``timeout``: no first byte within the header timeout.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable

from proxies.dataplane import errors
from proxies.dataplane.downstream import DownstreamConnection
from proxies.dataplane.plane import DataPlane
from proxies.dataplane.tls import TlsTransport

log = logging.getLogger("proxies.listener")

TLS_HANDSHAKE_RECORD = 0x16
ACCEPT_BATCH = 64  # connections accepted per readiness event, as asyncio's own servers do
LOGGED_REFUSALS = 20  # refused handshakes logged per listener; later ones are only counted
MTLS_REQUIRED = errors.LocalError(
    403, "mtls-required",
    "this service accepts only mutual TLS from mesh sidecars (mtls.mode STRICT)", True)


class InboundListener:
    """Accepts on the inbound port and tells TLS from plaintext before any byte is read."""

    def __init__(self, plane: DataPlane, host: str, port: int, backlog: int) -> None:
        self.plane = plane
        self.loop = plane.loop
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family, backlog=backlog)
        self.sock.setblocking(False)
        self.sockets = [self.sock]  # as asyncio.Server has them (Sidecar.ports)
        self.factory: Callable[[], DownstreamConnection] = plane.downstream_factory(False)
        # Sockets accepted and not yet told apart, by fd: each with its timeout.
        self.sniffing: dict[int, tuple[socket.socket, asyncio.TimerHandle]] = {}
        self.handshakes: set[asyncio.Task[None]] = set()
        self.logged = 0
        self.closed = False
        self.loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for fd, (conn, timer) in list(self.sniffing.items()):
            timer.cancel()
            self.loop.remove_reader(fd)
            conn.close()
        self.sniffing.clear()
        for task in list(self.handshakes):
            task.cancel()

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: the backlog keeps them for later
                log.warning("inbound accept failed: %s", exc)
                return
            limits = self.plane.limits
            if len(self.sniffing) + len(self.handshakes) >= limits.max_connections:
                self.plane.metrics.count_refused_connection("inbound")
                conn.close()
                continue
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            fd = conn.fileno()
            timer = self.loop.call_later(limits.header_timeout_s, self._timed_out, fd)
            self.sniffing[fd] = (conn, timer)
            self.loop.add_reader(fd, self._sniff, fd)

    def _forget(self, fd: int) -> socket.socket | None:
        entry = self.sniffing.pop(fd, None)
        if entry is None:
            return None
        conn, timer = entry
        timer.cancel()
        self.loop.remove_reader(fd)
        return conn

    def _timed_out(self, fd: int) -> None:
        conn = self._forget(fd)
        if conn is not None:
            self.plane.metrics.count_mtls_refused("inbound", "timeout")
            conn.close()

    def _sniff(self, fd: int) -> None:
        entry = self.sniffing.get(fd)
        if entry is None:
            return
        try:
            first = entry[0].recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            first = b""
        conn = self._forget(fd)
        assert conn is not None
        if not first:  # closed before a byte
            conn.close()
            return
        plane = self.plane
        context: ssl.SSLContext | None = None
        if first[0] == TLS_HANDSHAKE_RECORD:
            identity = plane.identity
            context = None if identity is None else identity.server
            if context is None:
                plane.metrics.count_mtls_refused("inbound", "no_identity")
                conn.close()
                return
        elif plane.inbound_strict:
            plane.metrics.count_mtls_refused("inbound", "plaintext")
            try:
                conn.send(errors.encode(MTLS_REQUIRED, head_only=False, close=True))
            except OSError:
                pass
            conn.close()
            return
        task = self.loop.create_task(self._serve(conn, context))
        self.handshakes.add(task)
        task.add_done_callback(self.handshakes.discard)

    async def _serve(self, conn: socket.socket, context: ssl.SSLContext | None) -> None:
        loop = self.loop
        if context is None:
            await loop.connect_accepted_socket(self.factory, conn)
            return
        plane = self.plane
        try:
            _, tls = await loop.connect_accepted_socket(
                lambda: TlsTransport(loop, context, True, self.factory, plane.read_buffer,
                                     timeout=plane.limits.header_timeout_s),
                conn,
            )
            await tls.handshake
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            # The loop closed the transport (and detached or closed the socket); close()
            # on a detached socket does nothing.
            conn.close()
            plane.metrics.count_mtls_refused("inbound", "handshake")
            self.logged += 1
            if self.logged <= LOGGED_REFUSALS:
                log.warning("inbound TLS handshake refused: %s%s", _reason(exc),
                            " (further refusals are only counted)" if self.logged == LOGGED_REFUSALS else "")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, TimeoutError):
        return "handshake timed out"
    return f"{type(exc).__name__}: {exc}"
