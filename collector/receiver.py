"""Receiver: OTLP/HTTP on a raw ASGI app served by uvicorn (no framework).

Implements https://opentelemetry.io/docs/specs/otlp/#otlphttp: POST /v1/traces and
/v1/metrics, protobuf or JSON, optionally gzip; 200 with an Export*ServiceResponse in the
request's encoding (partial success when items were rejected); 400 with a google.rpc.Status
for data that can never be accepted (not retryable); 503 + Retry-After when the pipeline is
overloaded or Redis is down (retryable); 413 above the body limit, applied while reading and
to the decompressed size (gzip bombs); 431 (and a closed connection) above the header limit;
415 for other media types or encodings.
Also GET /health (JSON counters; 503 when degraded) and GET /metrics (Prometheus text).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import uvicorn
from google.rpc.status_pb2 import Status

from collector import otlp_metrics, otlp_traces
from collector.errors import ConfigError, InvalidRequest, Refusal
from collector.http_limits import header_limited_protocol
from collector.stats import CollectorStats

log = logging.getLogger(__name__)

# google.rpc.Code values (https://github.com/googleapis/googleapis/blob/master/google/rpc/code.proto)
_INVALID_ARGUMENT, _RESOURCE_EXHAUSTED, _UNIMPLEMENTED, _UNAVAILABLE = 3, 8, 12, 14
_PROTOBUF, _JSON = "application/x-protobuf", "application/json"


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    host: str = "127.0.0.1"
    port: int = 4318
    max_body_bytes: int = 8 * 1024 * 1024  # also the limit after decompression
    # Request line plus headers; past it 431 and the connection is closed (http_limits).
    max_header_bytes: int = 64 * 1024
    retry_after_s: int = 1

    def validate(self) -> None:
        if not self.host:
            raise ConfigError("receiver.host", "must not be empty")
        if not 0 <= self.port <= 65535:
            raise ConfigError("receiver.port", f"must be 0..65535, got {self.port}")
        if self.max_body_bytes < 1:
            raise ConfigError("receiver.max_body_bytes", f"must be >= 1, got {self.max_body_bytes}")
        if self.max_header_bytes < 1024:
            raise ConfigError("receiver.max_header_bytes", f"must be >= 1024, got {self.max_header_bytes}")
        if self.retry_after_s < 0:
            raise ConfigError("receiver.retry_after_s", f"must be >= 0, got {self.retry_after_s}")


class Pipeline(Protocol):
    """What the receiver needs from the rest of the collector."""

    def refusal(self) -> Refusal | None: ...

    def health_problems(self) -> list[str]: ...

    def offer(self, batch: Any, items: int) -> bool: ...

    def forward(self, signal: str, payload: bytes, content_type: str, items: int) -> None:
        """Forward an accepted export as received (uncompressed), when forwarding is on."""
        ...

    def limit(self, batch: Any) -> None:
        """Reject, in place and through the batch's partial success, what passes a cardinality limit."""
        ...


class _Reply(Exception):
    """Ends request handling with an error status (a control-flow shortcut, not a bug)."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


_CODES = {
    400: _INVALID_ARGUMENT,
    413: _RESOURCE_EXHAUSTED,
    415: _INVALID_ARGUMENT,
    503: _UNAVAILABLE,
    404: _UNIMPLEMENTED,
    405: _UNIMPLEMENTED,
}

_Signal = tuple[str, Callable[[bytes], Any], Callable[[bytes], Any], Callable[[Any, bool], bytes]]
_SIGNALS: dict[str, _Signal] = {
    "/v1/traces": (
        "traces",
        otlp_traces.decode_protobuf,
        otlp_traces.decode_json,
        otlp_traces.encode_response,
    ),
    "/v1/metrics": (
        "metrics",
        otlp_metrics.decode_protobuf,
        otlp_metrics.decode_json,
        otlp_metrics.encode_response,
    ),
}


def _status_body(status: int, message: str, json: bool) -> tuple[bytes, bytes]:
    code = _CODES.get(status, 13)
    if json:
        return orjson.dumps({"code": code, "message": message}), _JSON.encode()
    return Status(code=code, message=message).SerializeToString(), _PROTOBUF.encode()


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip (all members), refusing output beyond ``limit`` bytes."""
    out = bytearray()
    while data:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = decompressor.decompress(data, limit - len(out) + 1)
        except zlib.error as exc:
            raise _Reply(400, f"body is not valid gzip: {exc}") from None
        out += chunk
        if len(out) > limit or decompressor.unconsumed_tail:
            raise _Reply(413, f"decompressed body exceeds {limit} bytes")
        if not decompressor.eof:
            raise _Reply(400, "gzip body is truncated")
        data = decompressor.unused_data
    return bytes(out)


class OTLPHttpReceiver:
    """The ASGI application plus the uvicorn server that runs it."""

    def __init__(
        self, pipeline: Pipeline, config: ReceiverConfig | None = None, stats: CollectorStats | None = None
    ) -> None:
        self.config = config or ReceiverConfig()
        self.config.validate()
        self.pipeline = pipeline
        self.stats = stats or CollectorStats()
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._main: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    # -- ASGI ---------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        json_reply = False
        try:
            status, headers, body = await self._handle(scope, receive)
        except _Reply as reply:
            json_reply = _content_type(scope) == _JSON
            body, content_type = _status_body(reply.status, reply.message, json_reply)
            status, headers = reply.status, [(b"content-type", content_type), *reply.headers]
        except Exception:  # request boundary: a bad request must never take the server down
            log.exception("OTLP request failed")
            body, content_type = _status_body(500, "internal error", False)
            status, headers = 500, [(b"content-type", content_type)]
        self.stats.requests[status] += 1
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(
        self, scope: dict[str, Any], receive: Any
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        path, method = scope["path"], scope["method"]
        if path == "/health" or path == "/metrics":
            if method not in ("GET", "HEAD"):
                raise _Reply(405, "use GET", [(b"allow", b"GET")])
            if path == "/health":
                # 503 when degraded, so a load balancer or orchestrator probe sees it.
                problems = self.pipeline.health_problems()
                body = orjson.dumps(
                    {"status": "degraded" if problems else "ok", "problems": problems, **self.stats.as_dict()}
                )
                return 503 if problems else 200, [(b"content-type", b"application/json")], body
            return (
                200,
                [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
                self.stats.prometheus().encode(),
            )
        signal = _SIGNALS.get(path)
        if signal is None:
            raise _Reply(404, f"no such path {path}; OTLP/HTTP uses /v1/traces and /v1/metrics")
        if method != "POST":
            raise _Reply(405, "use POST", [(b"allow", b"POST")])
        name, decode_protobuf, decode_json, encode_response = signal

        content_type = _content_type(scope)
        if content_type not in (_PROTOBUF, _JSON):
            raise _Reply(415, f"unsupported content type {content_type!r}; use {_PROTOBUF} or {_JSON}")
        json = content_type == _JSON
        encoding = _header(scope, b"content-encoding").lower()
        if encoding not in ("", "identity", "gzip"):
            raise _Reply(415, f"unsupported content encoding {encoding!r}; use gzip or none")

        body = await self._read_body(scope, receive)
        if encoding == "gzip":
            body = gunzip(body, self.config.max_body_bytes)
        try:
            batch = decode_json(body) if json else decode_protobuf(body)
        except InvalidRequest as exc:
            raise _Reply(400, str(exc)) from None
        items = batch.span_count if name == "traces" else batch.point_count

        # Refused only once decoded, as the OpenTelemetry Collector does, so that a request
        # that can never be accepted gets its 400 rather than 503s forever, and so that the
        # items inside a refused request are known and counted.
        refusal = self.pipeline.refusal()
        if refusal is None:
            self.pipeline.limit(batch)
        if refusal is None and batch.items and not self.pipeline.offer(batch, batch.items):
            refusal = Refusal("queue_full", "the collector's queue is full; retry later")
        if refusal is not None:
            self.stats.refused[refusal.reason] += 1
            self.stats.refused_items[name, refusal.reason] += items
            raise _Reply(503, refusal.message, self._retry_after())

        # Counted only once accepted: a refused request comes back as a retry.
        rejected = batch.rejected.count
        if name == "traces":
            self.stats.received_spans += items
            self.stats.rejected_spans += rejected
        else:
            self.stats.received_points += items
            self.stats.rejected_points += rejected
        # After acceptance only: a refused export comes back as a retry, and is forwarded
        # then, so the backend gets each export once.
        self.pipeline.forward(name, body, content_type, items)
        return 200, [(b"content-type", content_type.encode())], encode_response(batch, json)

    def _retry_after(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.config.retry_after_s).encode())]

    async def _read_body(self, scope: dict[str, Any], receive: Any) -> bytes:
        limit = self.config.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > limit:
            raise _Reply(413, f"body of {declared} bytes exceeds {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Reply(400, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Reply(413, f"body exceeds {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.config.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        sock.set_inheritable(True)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self,
            lifespan="off",
            log_level="warning",
            access_log=False,
            server_header=False,
            http=header_limited_protocol(self.config.max_header_bytes, self.stats),
            timeout_graceful_shutdown=5,
        )
        config.load()
        server = uvicorn.Server(config)
        # uvicorn's serve() also installs signal handlers; the collector owns those, so
        # drive startup/main_loop/shutdown directly.
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._server = server
        self._main = asyncio.create_task(server.main_loop(), name="otlp-http-receiver")

    async def shutdown(self) -> None:
        server, main = self._server, self._main
        if server is None or main is None:
            return
        server.should_exit = True
        await main
        await server.shutdown(sockets=[self._socket] if self._socket else None)
        self._server = self._main = None


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1").strip()
    return ""


def _content_type(scope: dict[str, Any]) -> str:
    return _header(scope, b"content-type").split(";", 1)[0].strip().lower()
