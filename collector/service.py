"""The collector's pipeline, assembled: receiver -> queue -> connectors -> exporters.

    OTLP/HTTP receiver ─┐
    OTLP/gRPC receiver ─┴▶ queue processor ─┬▶ sidecar metrics connector ─┐
           │                              ├▶ service graph connector ───┴▶ Redis graph exporter
           │                              └▶ trace store connector ──────▶ Redis trace exporter
           └─▶ forwarder (when configured) ─▶ another OTLP endpoint
    live publisher (reads the graph back from Redis) ─▶ channel layer group "graph"
    keep relay (traces marked meshui.keep) ─▶ channel layer group "proxies" ─▶ every sidecar

Components start downstream first and stop upstream first, so every buffer drains into a
running consumer (the OpenTelemetry Collector's service lifecycle).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from collector.cardinality import CardinalityConfig, CardinalityLimiter
from collector.errors import ConfigError, Refusal
from collector.forwarder import Forwarder, ForwarderConfig
from collector.keeprelay import KeepRelay, KeepRelayConfig
from collector.publisher import LivePublisher, LivePublisherConfig, channel_layer
from collector.queue import QueueConfig, QueueProcessor
from collector.receiver import OTLPHttpReceiver, ReceiverConfig
from collector.receiver_grpc import GrpcReceiverConfig, OTLPGrpcReceiver
from collector.records import MetricBatch, TraceBatch
from collector.redis_availability import RedisAvailability
from collector.redis_exporter import RedisExporterConfig, RedisGraphExporter, redis_client
from collector.servicegraph import ServiceGraphConfig, ServiceGraphConnector
from collector.sidecar_metrics import SidecarMetricsConfig, SidecarMetricsConnector
from collector.stats import CollectorStats
from collector.trace_exporter import RedisTraceExporter
from collector.traceconnector import TraceStoreConfig, TraceStoreConnector

log = logging.getLogger(__name__)


class Component(Protocol):
    """The lifecycle every pipeline component has (receiver, processors, connectors, exporters)."""

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...


COMPONENT_SHUTDOWN_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    redis_url: str = ""
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    grpc_receiver: GrpcReceiverConfig = field(default_factory=GrpcReceiverConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    servicegraph: ServiceGraphConfig = field(default_factory=ServiceGraphConfig)
    sidecar_metrics: SidecarMetricsConfig = field(default_factory=SidecarMetricsConfig)
    redis_exporter: RedisExporterConfig = field(default_factory=RedisExporterConfig)
    publisher: LivePublisherConfig = field(default_factory=LivePublisherConfig)
    cardinality: CardinalityConfig = field(default_factory=CardinalityConfig)
    forwarder: ForwarderConfig = field(default_factory=ForwarderConfig)
    trace_store: TraceStoreConfig = field(default_factory=TraceStoreConfig)
    keep_relay: KeepRelayConfig = field(default_factory=KeepRelayConfig)

    def validate(self) -> None:
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("redis_url", f"must be a redis:// URL, got {self.redis_url!r}")
        for part in (
            self.receiver,
            self.grpc_receiver,
            self.queue,
            self.servicegraph,
            self.sidecar_metrics,
            self.redis_exporter,
            self.publisher,
            self.cardinality,
            self.forwarder,
            self.trace_store,
            self.keep_relay,
        ):
            part.validate()
        if self.forwarder.enabled and self.forwarder.queue_max_bytes < self.receiver.max_body_bytes:
            raise ConfigError(
                "forwarder.queue_max_bytes",
                f"must be at least receiver.max_body_bytes ({self.receiver.max_body_bytes}), "
                "or the largest exports could never be forwarded",
            )


class Collector:
    """One collector process's pipeline; ``start()``/``shutdown()`` run it in the current loop."""

    def __init__(
        self,
        config: CollectorConfig,
        *,
        redis: Any = None,
        layer: Any = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        config.validate()
        self.config = config
        self.stats = CollectorStats()
        self.redis = redis or redis_client(config.redis_url, config.redis_exporter.socket_timeout_s)
        # One reachability state: the exporter's writes and the publisher's lock both update it.
        self.redis_availability = RedisAvailability(self.stats)
        # One limiter for the receiver (what an export names) and the writer (what pairing
        # and the field layout reveal), so both count against the same window.
        self.limiter = CardinalityLimiter(config.cardinality, clock=wall_clock)
        self.stats.cardinality = self.limiter
        self.exporter = RedisGraphExporter(
            self.redis,
            config.redis_exporter,
            self.stats,
            clock=wall_clock,
            availability=self.redis_availability,
            limiter=self.limiter,
        )
        self.publisher = LivePublisher(
            self.redis,
            layer if layer is not None else channel_layer(config.redis_url, config.publisher),
            config.publisher,
            self.stats,
            clock=wall_clock,
            availability=self.redis_availability,
        )
        self.servicegraph = ServiceGraphConnector(
            self.exporter, config.servicegraph, self.stats, clock=monotonic
        )
        self.sidecar_metrics = SidecarMetricsConnector(self.exporter, config.sidecar_metrics, self.stats)
        self.trace_exporter = RedisTraceExporter(
            self.redis, config.trace_store, self.stats, clock=wall_clock,
            availability=self.redis_availability)
        self.tracestore = TraceStoreConnector(
            self.trace_exporter, config.trace_store, self.stats, clock=monotonic)
        # Tail keep: traces a sidecar marked meshui.keep, named to meshui on the publisher's layer.
        self.keep_relay = KeepRelay(self.publisher.layer, config.keep_relay, self.stats, clock=monotonic)
        self.queue = QueueProcessor(self._route, config.queue, self.stats)
        self.receiver = OTLPHttpReceiver(self, config.receiver, self.stats)
        self.grpc_receiver = OTLPGrpcReceiver(self, config.grpc_receiver, self.stats)
        self.forwarder: Forwarder | None = None
        # Downstream first. The forwarder stops last, after the graph's final flush: its
        # drain may take up to its drain_timeout_s while the backend is away.
        self._components: list[Component] = []
        if config.forwarder.enabled:
            self.forwarder = Forwarder(config.forwarder, monotonic=monotonic)
            self.stats.forwarding = self.forwarder.stats
            self._components.append(self.forwarder)
        self._components += [
            self.exporter,
            *([self.trace_exporter] if config.trace_store.enabled else []),
            self.publisher,
            *([self.keep_relay] if config.keep_relay.enabled else []),
            self.servicegraph,
            *([self.tracestore] if config.trace_store.enabled else []),
            self.sidecar_metrics,
            self.queue,
            self.receiver,
            self.grpc_receiver,
        ]

    def _route(self, batch: TraceBatch | MetricBatch) -> None:
        if isinstance(batch, TraceBatch):
            self.servicegraph.consume(batch)
            if self.config.trace_store.enabled:
                self.tracestore.consume(batch)
            if self.config.keep_relay.enabled:
                self.keep_relay.consume(batch)
        else:
            self.sidecar_metrics.consume(batch)

    # The receiver's view of the pipeline.
    def refusal(self) -> Refusal | None:
        if self.queue.full():
            return Refusal("queue_full", "the collector's queue is full; retry later")
        return self.exporter.refusal()

    def health_problems(self) -> list[str]:
        # A full queue is not listed: it comes and goes within a flush or two, and a
        # health check failing on it would get a merely busy collector restarted.
        return self.exporter.problems()

    def offer(self, batch: Any, items: int) -> bool:
        return self.queue.offer(batch, items)

    def forward(self, signal: str, payload: bytes, content_type: str, items: int) -> None:
        """Hand an accepted export to the forwarder, if one is configured (never blocks)."""
        if self.forwarder is not None:
            self.forwarder.offer(signal, payload, content_type, items)

    def limit(self, batch: TraceBatch | MetricBatch) -> None:
        if isinstance(batch, TraceBatch):
            self.limiter.limit_traces(batch)
        else:
            self.limiter.limit_metrics(batch)

    @property
    def port(self) -> int | None:
        """The OTLP/HTTP port (the one /health and /metrics are on)."""
        return self.receiver.port

    @property
    def grpc_port(self) -> int | None:
        """The OTLP/gRPC port, None when the gRPC receiver is off."""
        return self.grpc_receiver.port

    async def start(self) -> None:
        try:
            await self.redis.ping()
        except Exception as exc:
            log.warning("Redis at %s is not reachable yet (%s); will retry", self.config.redis_url, exc)
            self.redis_availability.failed(exc)
        started: list[Component] = []
        try:
            for component in self._components:
                await component.start()
                started.append(component)
        except BaseException:
            for component in reversed(started):
                await component.shutdown()
            raise
        log.info("collector listening on http://%s:%s", self.config.receiver.host, self.port)
        if self.grpc_port is not None:
            log.info("OTLP/gRPC listening on %s:%s", self.config.grpc_receiver.host, self.grpc_port)

    async def shutdown(self) -> None:
        """Upstream first: stop receiving, drain the queue, flush the graph.

        Each component gets ``COMPONENT_SHUTDOWN_TIMEOUT_S``: a stop must end in seconds
        (SIGTERM, the demo's Ctrl-C), so one that hangs is logged with where it hangs and
        left behind rather than holding the whole process.
        """
        for component in reversed(self._components):
            name = type(component).__name__
            task = asyncio.ensure_future(component.shutdown())
            done, _ = await asyncio.wait({task}, timeout=COMPONENT_SHUTDOWN_TIMEOUT_S)
            if not done:
                stack = io.StringIO()
                task.print_stack(file=stack)
                log.error(
                    "shutting down %s took over %.0f s; going on without it:\n%s",
                    name,
                    COMPONENT_SHUTDOWN_TIMEOUT_S,
                    stack.getvalue(),
                )
                task.cancel()
            elif task.exception() is not None:
                log.error("shutting down %s failed", name, exc_info=task.exception())
        await self.redis.aclose()
