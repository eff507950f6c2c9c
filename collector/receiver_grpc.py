"""Receiver: OTLP/gRPC (``TraceService/Export``, ``MetricsService/Export``) on grpc.aio.

Implements https://opentelemetry.io/docs/specs/otlp/#otlpgrpc in the collector's own event
loop, through the same ``collector.ingest`` path as the HTTP receiver:

- OK with an ``Export*ServiceResponse``, carrying ``partial_success`` when items were rejected;
- INVALID_ARGUMENT for a request that can never be accepted (not retryable);
- UNAVAILABLE when the pipeline is overloaded or Redis is down (retryable), with a
  ``google.rpc.RetryInfo`` of ``retry_after_s`` in the status details
  (``grpc-status-details-bin``) and, because that is where the Python SDK's exporter looks
  for it, also on its own in ``google.rpc.retryinfo-bin``;
- RESOURCE_EXHAUSTED (from gRPC itself) for a message above ``max_message_bytes``, before
  or after gzip decompression (gRPC checks both, so a gzip bomb is cut off).

The handlers are generic, with no request deserializer: the request arrives as the bytes
off the wire and is decoded once, by the same upb decoder the HTTP receiver uses.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
import grpc.aio
from google.protobuf.any_pb2 import Any as AnyMessage
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from collector.errors import ConfigError, InvalidRequest
from collector.ingest import METRICS, TRACES, Pipeline, Refused, Signal, ingest
from collector.stats import CollectorStats

log = logging.getLogger(__name__)

# Full service names from the generated descriptors, so they cannot be misspelt.
TRACE_SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name
METRICS_SERVICE = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name

_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
_Outcome = tuple[grpc.StatusCode, str, tuple[tuple[str, bytes], ...], bytes]


@dataclass(frozen=True, slots=True)
class GrpcReceiverConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4317  # 0 picks a free port (``OTLPGrpcReceiver.port`` tells which)
    # Largest request message, also after gzip decompression (the HTTP body limit's twin).
    max_message_bytes: int = 8 * 1024 * 1024
    retry_after_s: int = 1  # RetryInfo.retry_delay on UNAVAILABLE
    # How long calls in flight may take to finish at shutdown before they are cancelled.
    shutdown_grace_s: float = 5.0

    def validate(self) -> None:
        if not self.host:
            raise ConfigError("grpc_receiver.host", "must not be empty")
        if not 0 <= self.port <= 65535:
            raise ConfigError("grpc_receiver.port", f"must be 0..65535, got {self.port}")
        if self.max_message_bytes < 1:
            raise ConfigError(
                "grpc_receiver.max_message_bytes", f"must be >= 1, got {self.max_message_bytes}"
            )
        if self.retry_after_s < 0:
            raise ConfigError("grpc_receiver.retry_after_s", f"must be >= 0, got {self.retry_after_s}")
        if self.shutdown_grace_s < 0:
            raise ConfigError(
                "grpc_receiver.shutdown_grace_s", f"must be >= 0, got {self.shutdown_grace_s}"
            )


def retry_trailers(message: str, delay_s: int) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata of an UNAVAILABLE answer: the status with its RetryInfo detail."""
    info = RetryInfo()
    info.retry_delay.seconds = delay_s
    detail = AnyMessage()
    detail.Pack(info)
    status = Status(code=grpc.StatusCode.UNAVAILABLE.value[0], message=message, details=[detail])
    return (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("google.rpc.retryinfo-bin", info.SerializeToString()),
    )


class OTLPGrpcReceiver:
    """The two OTLP Export services on a grpc.aio server in the running event loop."""

    def __init__(
        self,
        pipeline: Pipeline,
        config: GrpcReceiverConfig | None = None,
        stats: CollectorStats | None = None,
    ) -> None:
        self.config = config or GrpcReceiverConfig()
        self.config.validate()
        self.pipeline = pipeline
        self.stats = stats or CollectorStats()
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None

    def _handler(self, signal: Signal) -> grpc.RpcMethodHandler:
        async def export(requests: AsyncIterator[bytes], context: _Context) -> bytes:
            code, message, trailers, response = await self._export(signal, requests, context)
            self.stats.grpc_requests[code.name] += 1
            if code is not grpc.StatusCode.OK and message:  # no message: gRPC has answered
                await context.abort(code, message, trailing_metadata=trailers)
            return response

        # Registered as stream-unary although Export is unary (the wire is the same): a
        # message gRPC refuses for its size then still reaches this handler, as "no
        # message", so that refusal is counted too. A unary-unary handler never runs for it.
        return grpc.stream_unary_rpc_method_handler(export)

    async def _export(
        self, signal: Signal, requests: AsyncIterator[bytes], context: _Context
    ) -> _Outcome:
        body: bytes | None = None
        async for message in requests:
            if body is not None:
                return grpc.StatusCode.INVALID_ARGUMENT, "Export takes exactly one request message", (), b""
            body = message
        if body is None:
            # gRPC has already answered: RESOURCE_EXHAUSTED for a message over the limit,
            # or the client went away first. Counted, with no answer of ours.
            code = grpc.StatusCode.CANCELLED if context.cancelled() else grpc.StatusCode.RESOURCE_EXHAUSTED
            return code, "", (), b""
        try:
            # ``body`` is the raw ExportServiceRequest: what a forwarder is to be handed.
            response = ingest(self.pipeline, self.stats, signal, body, False)
        except InvalidRequest as exc:
            return grpc.StatusCode.INVALID_ARGUMENT, str(exc) or "invalid request", (), b""
        except Refused as exc:
            refused = exc.refusal.message
            trailers = retry_trailers(refused, self.config.retry_after_s)
            return grpc.StatusCode.UNAVAILABLE, refused, trailers, b""
        except Exception:  # request boundary: a bad request must never take the server down
            log.exception("OTLP/gRPC %s export failed", signal.name)
            return grpc.StatusCode.INTERNAL, "internal error", (), b""
        return grpc.StatusCode.OK, "", (), response

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        if not self.config.enabled:
            return
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self.config.max_message_bytes),
                # gRPC sets SO_REUSEPORT by default: a second collector on the same port
                # would then share it silently instead of failing to start.
                ("grpc.so_reuseport", 0),
            ]
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(TRACE_SERVICE, {"Export": self._handler(TRACES)}),
                grpc.method_handlers_generic_handler(METRICS_SERVICE, {"Export": self._handler(METRICS)}),
            )
        )
        host = self.config.host
        address = f"[{host}]:{self.config.port}" if ":" in host else f"{host}:{self.config.port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc's way of saying the address is taken or invalid
            raise OSError(f"cannot listen on {address} for OTLP/gRPC: {exc}") from None
        if not port:
            raise OSError(f"cannot listen on {address} for OTLP/gRPC")
        await server.start()
        self.port = port
        self._server = server

    async def shutdown(self) -> None:
        server = self._server
        if server is None:
            return
        # New calls are refused at once; calls in flight get the grace period to finish.
        await server.stop(self.config.shutdown_grace_s)
        self._server = None

