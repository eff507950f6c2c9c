"""What the data path shares across connections: identity, endpoints, pools, counters, telemetry."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proxies.endpoints import Endpoint, EndpointRegistry, EndpointSnapshot
from proxies.http1 import host_name, split_target
from proxies.listener import Listener
from proxies.metrics import ProxyMetrics
from proxies.upstream import ConnectionPool

if TYPE_CHECKING:
    from proxies.exchange import Exchange

log = logging.getLogger("proxies.dataplane")


class DataPlane:
    """Shared state of the inbound and outbound listeners of one sidecar."""

    __slots__ = (
        "loop",
        "service",
        "version",
        "registry",
        "app_endpoint",
        "pools",
        "metrics",
        "telemetry",
        "trace_incoming",
        "trace_sample",
        "span_factory",
        "outbound_extra",
    )

    def __init__(
        self,
        *,
        service: str,
        version: str,
        app: tuple[str, int],
        telemetry: Any,
        trace_incoming: Callable[..., Any],
        trace_sample: float,
        span_factory: Callable[..., Any] | None = None,
        registry: EndpointRegistry | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.service = service
        self.version = version
        self.registry = registry or EndpointRegistry()
        self.registry.on_swap(self._prune_pools)
        self.app_endpoint = Endpoint(service, "local-app", version, app[0], app[1])
        self.pools: dict[str, ConnectionPool] = {}
        self.metrics = ProxyMetrics()
        self.telemetry = telemetry
        self.trace_incoming = trace_incoming
        self.trace_sample = trace_sample
        self.span_factory = span_factory
        self.outbound_extra = (b"x-meshui-source: %b\r\n" % service.encode("ascii"),)

    def listener_factory(self, outbound: bool) -> Callable[[], Listener]:
        return lambda: Listener(self, outbound)

    def pool_for(self, endpoint: Endpoint) -> ConnectionPool:
        pool = self.pools.get(endpoint.address)
        if pool is None or pool.closed:
            pool = self.pools[endpoint.address] = ConnectionPool(self, endpoint.host, endpoint.port)
        return pool

    def _prune_pools(self, old: EndpointSnapshot, new: EndpointSnapshot) -> None:
        """Close idle connections to addresses that left the endpoint set."""
        live = {e.address for entry in new.services.values() for e in entry.endpoints}
        live.add(self.app_endpoint.address)
        for address in [a for a in self.pools if a not in live]:
            self.pools.pop(address).close()

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()

    def record_span(self, exchange: Exchange, error: bool) -> None:
        """Hand a sampled request's span to telemetry (off the common path: ~1% of requests)."""
        factory = self.span_factory
        if factory is None:
            return
        try:
            trace = exchange.trace
            split = split_target(exchange.target)
            path = (split[1] if split else exchange.target).split(b"?", 1)[0]
            span = factory(
                trace_id=trace.trace_id,
                span_id=trace.span_id,
                parent_span_id=trace.parent_span_id,
                name=f"{exchange.method.decode('latin-1')} {exchange.destination}",
                kind="client" if exchange.outbound else "server",
                start_ns=exchange.start_ns,
                end_ns=time.time_ns(),
                attributes={
                    "http.request.method": exchange.method.decode("latin-1"),
                    "url.path": path.decode("latin-1"),
                    "http.response.status_code": exchange.status,
                    "server.address": _server_address(exchange),
                    "destination.service": exchange.destination,
                    "destination.version": exchange.destination_version,
                },
                error=error,
            )
            self.telemetry.record_span(span)
        except Exception:
            log.exception("could not record a span")


def _server_address(exchange: Exchange) -> str:
    """The instance dialled, or else the host that was asked for (an unregistered one)."""
    endpoint = exchange.endpoint
    if endpoint is not None:
        return endpoint.address
    requested = exchange.host
    if requested is None and exchange.method == b"CONNECT":
        requested = exchange.target  # authority-form: the host the client wanted a tunnel to
    return host_name(requested).decode("latin-1") if requested else ""
