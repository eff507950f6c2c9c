"""Mutual TLS for the data plane's connections to and from other sidecars.

``TlsTransport`` sits between a plain TCP transport of the event loop and one of the data
plane's connections (``DownstreamConnection``, ``UpstreamConnection``): it is the TCP
transport's protocol and the connection's transport. It holds the connection's
``ssl.SSLObject`` over two memory BIOs, runs the handshake, then

- decrypts what the socket read into the plane's read buffer and hands the connection a
  view of it (``Received``), in the same call: the connection parses it before returning;
- encrypts each write into one TLS record (or more, past 16 KiB) and writes those to the
  socket at once.

Why not the event loop's own TLS (``create_connection(ssl=...)``)? uvloop's SSLProtocol is
general: per record it calls the protocol back twice (``get_buffer``, ``buffer_updated``),
copies the context on every write and keeps its own buffers and flow control. A mesh hop
carries a few hundred bytes a request, so that is a sixth of the instructions TLS adds a
record exchange (bench/tls_layer.py; bench/RESULTS.md, "TLS layer"). Here a record costs one
Python call each way and the C methods of the SSL object (no SSLObject frame).

What the connection sees matches a TCP transport: ``connection_made`` once the handshake
succeeded (with ``get_extra_info("ssl_object")`` for the peer's certificate), then
``data_received``, ``pause_writing``/``resume_writing`` and ``connection_lost``. The
handshake's outcome is the future ``handshake`` (the connection, or the error: a refused
certificate, the peer hanging up, or the timeout). A TLS close (close_notify) from the peer
ends the connection as a FIN would; ``close`` sends one before closing the socket.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

# Plaintext asked of one SSL_read: a whole TLS record (16 KiB at most), so one read takes one.
READ_SIZE = 16384


class TlsTransport(asyncio.Transport, asyncio.Protocol):
    """One TLS connection: the TCP transport's protocol, and the transport of ``app``."""

    __slots__ = (
        "loop",
        "raw",
        "app",
        "handshake",
        "ssl_object",
        "_obj",
        "_incoming",
        "_outgoing",
        "_buffer",
        "_factory",
        "_timeout",
        "_timer",
        "_closing",
        "_paused",
        "_error",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        context: ssl.SSLContext,
        server_side: bool,
        factory: Callable[[], asyncio.Protocol],
        buffer: memoryview,
        timeout: float | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.loop = loop
        self.raw: asyncio.Transport = None  # type: ignore[assignment]
        self.app: Any = None  # the connection, once the handshake succeeded
        self.handshake: asyncio.Future[Any] = loop.create_future()
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname
        )
        # The C object SSLObject's methods call: its read and write skip a Python frame a record.
        self._obj = self.ssl_object._sslobj  # type: ignore[attr-defined]
        self._buffer = buffer  # decrypted records land here; valid only during data_received
        assert len(buffer) >= READ_SIZE
        self._factory = factory
        self._timeout = timeout
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._paused = False
        self._error: BaseException | None = None  # why we cut the connection, for connection_lost

    # the TCP transport's callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport  # type: ignore[assignment]
        if self._timeout is not None:
            self._timer = self.loop.call_later(self._timeout, self._timed_out)
        if not self.ssl_object.server_side:
            self._shake()  # the ClientHello

    def data_received(self, data: bytes) -> None:
        """Decrypt what has arrived, record by record, into the buffer for the connection
        (``b""``: what is already buffered)."""
        incoming = self._incoming
        incoming.write(data)
        app = self.app
        if app is None:
            if not self._closing:
                self._shake()
            return
        obj, buffer = self._obj, self._buffer
        while True:
            try:
                count = obj.read(READ_SIZE, buffer)
            except ssl.SSLWantReadError:  # the rest of a record comes with a later read
                break
            except ssl.SSLZeroReturnError:  # close_notify (read gives 0 for it, or raises)
                self.close()
                return
            except ssl.SSLError as exc:  # not TLS from our peer (a bad MAC, garbage)
                self._cut(exc)
                return
            if not count:  # close_notify: the peer is done, as with a FIN
                self.close()
                return
            app.data_received(buffer[:count])
            if not incoming.pending or self._closing:
                break
            if self._paused:
                return  # resume_reading delivers the rest
        if self._outgoing.pending and not self._closing:  # what reading produced (an alert, say)
            self.raw.write(self._outgoing.read())

    def eof_received(self) -> bool:
        # A FIN without close_notify: the peer went (a truncation TLS cannot tell from a
        # close; HTTP framing can). Returning False lets the loop close the socket.
        return False

    def pause_writing(self) -> None:
        if self.app is not None:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self.app is not None:
            self.app.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._stop_timer()
        error = self._error or exc
        if not self.handshake.done():  # (also when the connection's connection_made raised)
            self.handshake.set_exception(error or ConnectionResetError("peer closed in the TLS handshake"))
        if self.app is not None:
            self.app.connection_lost(error)

    # handshake -------------------------------------------------------------------------------

    def _shake(self) -> None:
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError as exc:
            self._flush()  # the alert tells the peer why
            self._fail_handshake(exc)
            return
        self._flush()
        self._stop_timer()
        app = self.app = self._factory()
        app.connection_made(self)
        if not self.handshake.done():
            self.handshake.set_result(app)
        if self._incoming.pending and not self._closing:
            self.data_received(b"")  # the first request came with the handshake's last flight

    def _fail_handshake(self, exc: BaseException) -> None:
        self._closing = True
        self._stop_timer()
        if not self.handshake.done():
            self.handshake.set_exception(exc)
        self.raw.close()

    def _timed_out(self) -> None:
        self._timer = None
        if self.app is None and not self._closing:
            self._closing = True
            if not self.handshake.done():
                self.handshake.set_exception(TimeoutError("TLS handshake timed out"))
            self.raw.abort()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # records ---------------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._outgoing.pending:
            self.raw.write(self._outgoing.read())

    def _cut(self, exc: BaseException) -> None:
        self._error = exc
        self._closing = True
        self.raw.abort()

    # the transport the connection writes to ----------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        self._obj.write(data)
        self.raw.write(self._outgoing.read())

    def close(self) -> None:
        """close_notify, then close the socket after what is buffered."""
        if self._closing:
            return
        self._closing = True
        try:
            self._obj.shutdown()
        except (ssl.SSLError, ValueError):
            pass  # we do not wait for the peer's close_notify
        self._flush()
        self.raw.close()

    def abort(self) -> None:
        self._closing = True
        self.raw.abort()

    def is_closing(self) -> bool:
        return self._closing or self.raw.is_closing()

    def can_write_eof(self) -> bool:
        return False  # no TLS half-close here: close() sends close_notify and closes the socket

    def write_eof(self) -> None:
        raise NotImplementedError("a TLS connection closes with close()")

    def pause_reading(self) -> None:
        self._paused = True
        self.raw.pause_reading()

    def resume_reading(self) -> None:
        if not self._paused:
            return
        self._paused = False
        self.raw.resume_reading()
        if self._incoming.pending:
            self.loop.call_soon(self._resume_delivery)

    def _resume_delivery(self) -> None:
        if not self._paused and not self._closing and self._incoming.pending:
            self.data_received(b"")

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size() + self._outgoing.pending

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self.ssl_object
        if name == "peercert":
            return self.ssl_object.getpeercert()
        if name == "cipher":
            return self.ssl_object.cipher()
        return self.raw.get_extra_info(name, default)
