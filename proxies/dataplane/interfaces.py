"""What the data path's modules share: the constants, and the Protocols back-references are typed against.

The arrows of ``proxies.dataplane`` run one way (the plane creates client connections and
pools; a client connection creates exchanges; an exchange borrows upstream connections),
and each object keeps a reference back up: an exchange to its client connection and to
the plane, a connection to the plane. Those back-references are typed against the
Protocols here rather than the classes above, as httpcore's ``interfaces.py`` does, so a
module can be read (and type-checked) without the ones that use it. They are typing
only: an attribute read costs what it did.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any, Protocol

from proxies.dataplane.limits import ListenerLimits
from proxies.dataplane.metrics import ProxyMetrics
from proxies.identity.tls import MeshIdentity
from proxies.mesh.endpoints import Endpoint, EndpointRegistry
from proxies.telemetry.tailkeep import TailKeeper
from proxies.telemetry.tracecontext import TraceContext
from proxies.traffic.authorization import Authorizer
from proxies.traffic.circuit import CircuitBreaker
from proxies.traffic.destination import Destination
from proxies.traffic.ratelimit import RateLimiter

# Why reading a client connection is paused: a bit set (DownstreamConnection.paused), so
# each reason is lifted on its own.
PAUSE_CONNECT = 1  # waiting for an upstream connection, a retry's backoff or a fault delay
PAUSE_PIPELINE = 2  # a request is queued behind the active one
PAUSE_UPSTREAM_FULL = 4  # the upstream's write buffer is full (request body backpressure)

# The write buffer of every data connection, client and upstream side: past it the
# transport calls pause_writing and the other side stops being read until it drains.
WRITE_HIGH_WATER = 64 * 1024


class Downstream(Protocol):
    """A client connection as its exchanges see it (``downstream.DownstreamConnection``)."""

    plane: Plane
    feeding: bool  # inside data_received: writes upstream wait for the end of the read
    paused: int  # the PAUSE_* reasons reading is paused for
    peer: str | None  # inbound over mTLS: the calling service its certificate names

    def pause(self, reason: int) -> None: ...
    def resume(self, reason: int) -> None: ...
    def write(self, data: bytes) -> None: ...
    def abort(self) -> None: ...
    def close_after_response(self) -> None: ...
    def exchange_finished(self, exchange: object) -> None: ...


class Upstream(Protocol):
    """An upstream connection as an exchange sees it (``upstream.UpstreamConnection``)."""

    transport: asyncio.Transport
    exchange: Any  # the exchange bound to it, or None while idle
    breaker: CircuitBreaker | None  # the destination's max_connections slot it holds
    received: bool  # any byte of the current response seen
    reading_paused: bool
    broken: bool
    idle_ticks: int

    @property
    def pool(self) -> Pool: ...

    def close(self) -> None: ...
    def abort(self) -> None: ...


class Pool(Protocol):
    """The idle connections to one address (``upstream.ConnectionPool``)."""

    connect_timeout_s: float

    def take_idle(self) -> Upstream | None: ...
    async def connect(self) -> Upstream: ...
    def release(self, conn: Upstream) -> None: ...


class Deadline(Protocol):
    """A request the plane's coarse deadline tick watches (``outbound.OutboundExchange``)."""

    def on_request_timeout(self) -> None: ...


class SpanSource(Protocol):
    """What a request's span is made of (an exchange, when its trace is sampled)."""

    trace: TraceContext
    method: bytes
    target: bytes
    host: bytes | None
    outbound: bool
    start_ns: int
    status: int
    destination_service: str
    destination_version: str
    endpoint: Endpoint | None
    events: list[tuple[int, str, dict[str, Any]]] | None


class TelemetrySink(Protocol):
    """Where the data path records requests and spans (``proxies.telemetry.Telemetry``)."""

    def record_request(
        self,
        direction: str,
        source: str,
        destination: str,
        destination_version: str,
        status: int,
        source_sidecar: bool,
        duration_s: float,
    ) -> None: ...

    def record_exemplar(
        self,
        direction: str,
        source: str,
        destination: str,
        destination_version: str,
        status: int,
        source_sidecar: bool,
        duration_s: float,
        trace_id: bytes,
        span_id: bytes,
        end_ns: int,
    ) -> None: ...

    def record_span(self, span: Any) -> None: ...


class Plane(Protocol):
    """The data plane as its connections and exchanges see it (``plane.DataPlane``)."""

    loop: asyncio.AbstractEventLoop
    # what TLS connections decrypt into, and parse before the read returns (proxies.dataplane.tls)
    read_buffer: memoryview
    # who this sidecar is
    service: str
    version: str
    app_endpoint: Endpoint  # the local app, where inbound requests go
    outbound_extra: tuple[bytes, ...]  # fields added to every outbound request head
    # what a client connection may use, and what the data path counts
    limits: ListenerLimits
    metrics: ProxyMetrics
    telemetry: TelemetrySink
    trace_incoming: Callable[[str | None, str | None, float], TraceContext]
    trace_sample: float
    tail: TailKeeper | None  # tail keep of unsampled requests (None: off)
    rng: random.Random
    # the policy and endpoints in force
    registry: EndpointRegistry
    destinations: dict[bytes, Destination]
    inbound_limiter: RateLimiter | None
    inbound_authorizer: Authorizer | None
    # mutual TLS: the certificate in force (None: plaintext only), the local mtls.mode
    identity: MeshIdentity | None
    inbound_strict: bool
    # open connections (for the idle sweep) and requests with a long timeout
    clients: set[Any]
    upstreams: set[Any]
    deadlines: dict[Deadline, float]

    def pool_for(self, endpoint: Endpoint) -> Pool: ...
    def watch_deadline(self, exchange: Deadline, timeout_s: float) -> None: ...
    def record_span(self, exchange: SpanSource, error: bool) -> None: ...
