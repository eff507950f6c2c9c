"""A minimal HTTP/1.1 client for OTLP exports: one keep-alive connection, on the event loop.

Just enough to POST a protobuf body and read the response with the sidecar's codec
(``proxies.http1``, llhttp), so exports never need a thread or a blocking library on the
proxy's loop.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from proxies import http1


class HttpError(ConnectionError):
    """The connection failed or the response could not be read (a retry may help)."""


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _ResponseReader:
    """Codec callbacks collecting one response, keeping at most ``max_body`` bytes of its body."""

    __slots__ = ("headers", "body", "complete", "room")

    def __init__(self, max_body: int) -> None:
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.complete = False
        self.room = max_body

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        # The rest is read and discarded: memory stays bounded whatever the server sends
        # (the request timeout bounds the time).
        if self.room > 0:
            kept = body[: self.room]
            self.body.append(kept)
            self.room -= len(kept)

    def on_message_complete(self) -> None:
        self.complete = True


class HttpClient:
    """POSTs to one origin over one reused connection; not safe for concurrent posts."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 5.0,
        *,
        headers: Sequence[tuple[str, str]] = (),
        user_agent: str = "meshui-sidecar",
        max_response_body: int = 1024 * 1024,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"OTLP endpoint must be http(s)://host[:port]: {base_url!r}")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.path_prefix = parts.path.rstrip("/")
        default_port = self.port == (443 if self.tls else 80)
        self.authority = self.host if default_port else f"{self.host}:{self.port}"
        if ":" in self.host:  # IPv6 literal
            self.authority = f"[{self.host}]" if default_port else f"[{self.host}]:{self.port}"
        self.timeout = timeout
        # Sent with every request (e.g. an Authorization header); the caller validates them.
        self.extra_head = "".join(f"{name}: {value}\r\n" for name, value in headers)
        self.user_agent = user_agent
        self.max_response_body = max_response_body
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, content_type: str) -> HttpResponse:
        """One request; a stale kept-alive connection is replaced once, transparently."""
        head = (
            f"POST {self.path_prefix}{path} HTTP/1.1\r\nHost: {self.authority}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"User-Agent: {self.user_agent}\r\n{self.extra_head}\r\n"
        ).encode("latin-1")
        reused = self._writer is not None
        try:
            return await asyncio.wait_for(self._exchange(head, body), self.timeout)
        except (OSError, HttpError, asyncio.IncompleteReadError) as error:
            self.close()
            if not reused or not isinstance(error, _StaleConnection):
                raise HttpError(str(error) or type(error).__name__) from error
        except TimeoutError as error:
            self.close()
            raise HttpError(f"no response within {self.timeout:g}s") from error
        try:
            return await asyncio.wait_for(self._exchange(head, body), self.timeout)
        except (OSError, HttpError, asyncio.IncompleteReadError) as error:
            self.close()
            raise HttpError(str(error) or type(error).__name__) from error
        except TimeoutError as error:
            self.close()
            raise HttpError(f"no response within {self.timeout:g}s") from error

    async def _exchange(self, head: bytes, body: bytes) -> HttpResponse:
        if self._writer is None:
            context = ssl.create_default_context() if self.tls else None
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, ssl=context
            )
        reader, writer = self._reader, self._writer
        assert reader is not None
        writer.write(head + body)
        await writer.drain()
        collected = _ResponseReader(self.max_response_body)
        parser = http1.ResponseParser(collected)
        received_any = False
        while not collected.complete:
            data = await reader.read(65536)
            if not data:
                if not received_any:
                    # The server closed an idle keep-alive connection before we wrote.
                    raise _StaleConnection("connection closed before a response")
                raise HttpError("connection closed mid-response")
            received_any = True
            try:
                parser.feed_data(data)
            except http1.ParseError as error:
                raise HttpError(f"bad HTTP response: {error}") from error
        # llhttp's should_keep_alive() is reset once the message completes: decide here.
        connection = collected.headers.get("connection", "").lower()
        if parser.get_http_version() != "1.1" or "close" in connection:
            self.close()
        return HttpResponse(parser.get_status_code(), collected.headers, b"".join(collected.body))

    def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None and not writer.transport.is_closing():
            writer.close()


class _StaleConnection(HttpError):
    pass
