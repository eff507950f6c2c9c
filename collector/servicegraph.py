"""Service graph from spans of any OpenTelemetry SDK: pair CLIENT and SERVER spans.

Modelled on the collector-contrib servicegraphconnector: a client span and the server span
whose parent it is (same trace) make one request on the edge client service -> server
service, under the server's ``service.version`` when it has one (the edge's split between
versions). Whichever arrives first waits in a bounded store with a TTL; what never finds its
partner is counted, and an unpaired client span that names its peer (``peer.service`` or
``server.address``) still becomes an edge to that peer ("virtual node").
https://github.com/open-telemetry/opentelemetry-collector-contrib/tree/main/connector/servicegraphconnector

Pure: time comes from an injected clock and expiry happens in ``sweep()``, which the
pipeline calls periodically; the I/O lives in the exporter behind ``GraphSink``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from collector.errors import ConfigError
from collector.graphstore import UNKNOWN
from collector.records import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_CONSUMER,
    SPAN_KIND_PRODUCER,
    SPAN_KIND_SERVER,
    Exemplar,
    GraphSink,
    Span,
    TraceBatch,
)
from collector.stats import CollectorStats
from proxies.telemetry.histogram import bucket_index


@dataclass(frozen=True, slots=True)
class ServiceGraphConfig:
    max_items: int = 100_000  # pending half-pairs
    ttl_s: float = 10.0  # how long a half-pair waits for its partner
    sweep_interval_s: float = 1.0
    # Treat PRODUCER/CONSUMER like CLIENT/SERVER (a consumer span's parent is the producer).
    pair_messaging: bool = False

    def validate(self) -> None:
        if self.max_items < 1:
            raise ConfigError("servicegraph.max_items", f"must be >= 1, got {self.max_items}")
        if not self.ttl_s > 0:
            raise ConfigError("servicegraph.ttl_s", f"must be > 0, got {self.ttl_s}")
        if not self.sweep_interval_s > 0:
            raise ConfigError("servicegraph.sweep_interval_s", f"must be > 0, got {self.sweep_interval_s}")


def _exemplar(span: Span, failed: bool) -> Exemplar:
    return Exemplar(span.trace_id.hex(), span.span_id.hex(), round(span.duration_ms, 3),
                    span.end_ns / 1e9, failed)


class _HalfPair:
    """What we know of one client->server call while waiting for its other half."""

    __slots__ = (
        "expires",
        "client_service",
        "client_ms",
        "client_failed",
        "client_exemplar",
        "peer",
        "server_service",
        "server_version",
        "server_failed",
        "server_ms",
    )

    def __init__(self, expires: float) -> None:
        self.expires = expires
        self.client_service: str | None = None
        self.client_ms = 0.0
        self.client_failed = False
        self.client_exemplar: list[tuple[int, Exemplar]] = []
        self.peer = ""
        self.server_service: str | None = None
        self.server_version = ""
        self.server_failed = False
        self.server_ms = 0.0


class ServiceGraphConnector:
    """Traces in, graph increments out."""

    def __init__(
        self,
        sink: GraphSink,
        config: ServiceGraphConfig | None = None,
        stats: CollectorStats | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or ServiceGraphConfig()
        self.config.validate()
        self.sink = sink
        self.stats = stats or CollectorStats()
        self.clock = clock
        # Insertion order is expiry order (constant TTL, monotonic clock), so the sweep
        # pops from the front; OrderedDict pops the front in O(1), a dict would rescan.
        self._store: OrderedDict[tuple[bytes, bytes], _HalfPair] = OrderedDict()
        self._client_kinds = {SPAN_KIND_CLIENT}
        self._server_kinds = {SPAN_KIND_SERVER}
        if self.config.pair_messaging:
            self._client_kinds.add(SPAN_KIND_PRODUCER)
            self._server_kinds.add(SPAN_KIND_CONSUMER)
        self._sweeper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._store)

    def consume(self, batch: TraceBatch) -> None:
        sink, stats, store = self.sink, self.stats, self._store
        client_kinds, server_kinds = self._client_kinds, self._server_kinds
        expires = self.clock() + self.config.ttl_s
        for group in batch.groups:
            if group.sidecar:
                # Sidecars' edges come from their metrics; pairing their sampled spans too
                # would count those requests twice.
                continue
            service, instance = group.service, group.instance
            for span in group.spans:
                kind = span.kind
                if kind in server_kinds:
                    failed = span.failed or span.http_status >= 500
                    bucket = bucket_index(span.duration_ms)
                    latency = {bucket: 1}
                    # Every span an SDK sent is a stored trace: each is its cell's exemplar.
                    exemplar = [(bucket, _exemplar(span, failed))]
                    sink.add_node(service, group.version, 1, int(failed), latency, instance, exemplar)
                    if not span.parent_span_id:
                        stats.root_spans += 1
                        sink.add_edge(UNKNOWN, service, 1, int(failed), latency, group.version, exemplar)
                        continue
                    key = (span.trace_id, span.parent_span_id)
                    half = self._half(key, expires)
                    if half is None:
                        continue
                    half.server_service = service
                    half.server_version = group.version
                    half.server_failed = failed
                    half.server_ms = span.duration_ms
                elif kind in client_kinds:
                    key = (span.trace_id, span.span_id)
                    half = self._half(key, expires)
                    if half is None:
                        continue
                    half.client_service = service
                    half.client_ms = span.duration_ms
                    half.client_failed = span.failed
                    half.client_exemplar = [(bucket_index(span.duration_ms), _exemplar(span, span.failed))]
                    half.peer = span.peer
                else:
                    continue
                if half.client_service is not None and half.server_service is not None:
                    del store[key]
                    stats.pairs += 1
                    failed = half.client_failed or half.server_failed
                    sink.add_edge(
                        half.client_service,
                        half.server_service,
                        1,
                        int(failed),
                        {bucket_index(half.client_ms): 1},
                        half.server_version,
                        half.client_exemplar,
                    )
                    sink.add_edge_served(
                        half.client_service, half.server_service, 1, int(failed),
                        {bucket_index(half.server_ms): 1})
        stats.pending_pairs = len(store)

    def sweep(self, now: float | None = None) -> int:
        """Expire half-pairs whose TTL has passed; returns how many expired."""
        now = self.clock() if now is None else now
        store, stats = self._store, self.stats
        expired = 0
        while store:
            key, half = next(iter(store.items()))
            if half.expires > now:
                break
            store.popitem(last=False)
            expired += 1
            stats.expired_unpaired += 1
            self._virtual_edge(half)
        stats.pending_pairs = len(store)
        return expired

    def flush_pending(self) -> int:
        """Empty the store at shutdown, as expiry would; returns how many halves lost their edge.

        A client half that names its peer still becomes its virtual edge. Every other half
        is counted in ``dropped_total{reason="pairing_shutdown"}``: a server half's node
        stats were counted on arrival, but the edge it waited for is lost.
        """
        store, stats = self._store, self.stats
        dropped = 0
        for half in store.values():
            if not self._virtual_edge(half):
                dropped += 1
        store.clear()
        if dropped:
            stats.dropped["pairing_shutdown"] += dropped
        stats.pending_pairs = 0
        return dropped

    def _half(self, key: tuple[bytes, bytes], expires: float) -> _HalfPair | None:
        """The waiting half-pair for ``key``, new if none; None (counted) when the store is full."""
        half = self._store.get(key)
        if half is None:
            if len(self._store) >= self.config.max_items:
                self.stats.dropped["pairing_store_full"] += 1
                return None
            half = self._store[key] = _HalfPair(expires)
        return half

    def _virtual_edge(self, half: _HalfPair) -> bool:
        """Count an unpaired client half that names its peer as an edge to that peer."""
        if half.client_service is None or not half.peer:
            return False
        self.stats.virtual_peer_edges += 1
        self.sink.add_edge(
            half.client_service, half.peer, 1, int(half.client_failed), {bucket_index(half.client_ms): 1},
            exemplars=half.client_exemplar,
        )
        return True

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="servicegraph-sweep")

    async def shutdown(self) -> None:
        """Stop sweeping and flush the store into the sink (upstream of the writer's last flush)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self.flush_pending()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval_s)
            self.sweep()
