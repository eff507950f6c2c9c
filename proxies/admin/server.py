"""The admin listener (loopback): one short GET per connection, answered from ``views``.

Not on the data path: parsed with the same codec, then routed by path to a view of the
running sidecar (``proxies.admin.views.RunningSidecar``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from proxies import http1
from proxies.admin import views
from proxies.admin.views import RunningSidecar

log = logging.getLogger("proxies.admin")

MAX_REQUEST_BYTES = 16 * 1024


class AdminProtocol(asyncio.Protocol):
    """Answers one GET and closes."""

    def __init__(self, sidecar: RunningSidecar) -> None:
        self.sidecar = sidecar
        self.transport: asyncio.Transport | None = None
        self.parser = http1.RequestParser(self)
        self.url = b""
        self.size = 0
        self.done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.size += len(data)
        try:
            if self.size > MAX_REQUEST_BYTES:
                raise http1.ParseError("request too large")
            self.parser.feed_data(data)
        except http1.UpgradeRequest:
            self.on_message_complete()
        except http1.ParseError:
            self._send(http1.simple_response(400, b"text/plain", b"malformed request\n"))

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        if self.done:
            return
        try:
            method = self.parser.get_method()
            path = self.url.split(b"?", 1)[0]
            if method not in (b"GET", b"HEAD"):
                response = http1.simple_response(405, b"text/plain", b"only GET\n")
            else:
                response = self.sidecar_route(path)
            if method == b"HEAD":
                response = response.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        except Exception:
            log.exception("admin request failed")
            response = http1.simple_response(500, b"text/plain", b"internal error\n")
        self._send(response)

    def sidecar_route(self, path: bytes) -> bytes:
        sidecar = self.sidecar
        if path == b"/ready":
            ready, why = views.readiness(sidecar)
            return http1.simple_response(200 if ready else 503, b"text/plain", why.encode() + b"\n")
        if path == b"/metrics":
            body = views.prometheus(sidecar).encode()
            return http1.simple_response(200, b"text/plain; version=0.0.4; charset=utf-8", body)
        if path == b"/config":
            return _json(views.config_view(sidecar))
        if path == b"/endpoints":
            return _json(views.endpoints_view(sidecar))
        if path == b"/identity":
            return _json(views.identity_view(sidecar))
        return http1.simple_response(
            404, b"text/plain", b"not found; try /ready /metrics /config /endpoints /identity\n"
        )

    def _send(self, data: bytes) -> None:
        self.done = True
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            transport.close()


def _json(value: Any) -> bytes:
    return http1.simple_response(200, b"application/json", orjson.dumps(value, option=orjson.OPT_INDENT_2))
