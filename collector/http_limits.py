"""A header size limit for uvicorn's httptools protocol: 431 and a closed connection past it.

httptools (llhttp) has no limit of its own on a request's head: it buffers a header's name
and value, and uvicorn the URL, for as long as the client keeps sending, so a 64 MiB header
costs 64 MiB (more, while the bytes are concatenated). uvicorn bounds the head only with the
h11 protocol (``h11_max_incomplete_event_size``, answered with a 400). This subclass counts
the bytes a request's head has taken so far, checked after each chunk the transport hands
over, so memory stays below the limit plus two reads (a read is at most 256 KiB under uvloop). A
request over it gets ``431 Request Header Fields Too Large`` and the connection is closed.
"""

from __future__ import annotations

from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from collector.stats import CollectorStats

_REASON = b"Request Header Fields Too Large"


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request whose head is over the limit."""


def header_limited_protocol(max_header_bytes: int, stats: CollectorStats) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a head limit of ``max_header_bytes`` (for ``Config(http=)``).

    Two checks: while a head streams in, the bytes of every chunk that stays inside it are
    added up (memory bound); when a head is complete, its size is measured (so a head that
    came in one read is held to the same limit).
    """

    class HeaderLimitedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_bytes = 0
            self._in_body = False
            self._crossed = False  # a head or a message ended during the current chunk
            self._too_large = False

        def on_headers_complete(self) -> None:
            self._in_body, self._crossed, self._head_bytes = True, True, 0
            # Request line and header lines as sent, give or take the method and version.
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) + 14
            if size > max_header_bytes:
                self._too_large = True
                raise _HeadTooLarge  # stops the parser: no ASGI task starts for it
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_body, self._crossed, self._head_bytes = False, True, 0
            super().on_message_complete()

        def data_received(self, data: bytes) -> None:
            # uvicorn's data_received, plus the refusal: its own would answer a callback's
            # exception with a 400 and a warning.
            self._unset_keepalive_if_required()
            self._crossed = False
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                if self._too_large:
                    self._refuse()
                    return
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
                return
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            # Only a chunk that began and ended inside one head is all head: a chunk in which
            # a head or a message ended also holds body bytes (or a next request's first
            # bytes, which then go uncounted until the head is complete).
            if self._in_body or self._crossed or self.transport.is_closing():
                return
            self._head_bytes += len(data)
            if self._head_bytes > max_header_bytes:
                self._refuse()

        def _refuse(self) -> None:
            message = f"request head exceeds {max_header_bytes} bytes".encode()
            stats.requests[431] += 1
            self.transport.write(
                b"HTTP/1.1 431 " + _REASON + b"\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(message)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + message
            )
            self.transport.close()

    return HeaderLimitedHttpToolsProtocol
