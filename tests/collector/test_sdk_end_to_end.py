"""A real opentelemetry-sdk app exports to the collector; the graph shows its calls.

``emit`` and ``sdk_edge`` are shared with the OTLP/gRPC version (test_receiver_grpc.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from collector import graphstore
from tests.collector.support import running_collector
from tests.polling import eventually

N = 250


def emit(exporter: Callable[[], SpanExporter]) -> None:
    """shop-web calls shop-api N times: a CLIENT span with a SERVER child, two providers."""
    providers = {}
    for service in ("shop-web", "shop-api"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(exporter(), max_queue_size=4 * N))
        providers[service] = provider
    web = providers["shop-web"].get_tracer("shop-web")
    api = providers["shop-api"].get_tracer("shop-api")
    for i in range(N):
        with web.start_as_current_span(f"GET /item/{i}", kind=trace.SpanKind.CLIENT):
            # In-process propagation: the server span's parent is the current client span.
            with api.start_as_current_span("GET /item", kind=trace.SpanKind.SERVER) as span:
                span.set_attribute("http.response.status_code", 200)
    for provider in providers.values():
        assert provider.force_flush(10_000)
        provider.shutdown()


def sdk_edge(redis_url: str) -> list[graphstore.EdgeJSON]:
    """The edge shop-web -> shop-api in the graph of the last two minutes (empty if none)."""
    client = redis.Redis.from_url(redis_url)
    try:
        graph = graphstore.fetch_graph(client, 120)
    finally:
        client.close()
    return [e for e in graph["edges"] if (e["source"], e["target"]) == ("shop-web", "shop-api")]


async def test_an_sdk_app_calling_another_shows_as_one_edge_with_exactly_n_requests(
        redis_url: str) -> None:
    async with running_collector(redis_url) as collector:
        endpoint = f"http://127.0.0.1:{collector.port}/v1/traces"
        await asyncio.to_thread(emit, lambda: OTLPSpanExporter(endpoint=endpoint))

        edge = await eventually(lambda: [e for e in sdk_edge(redis_url) if e["requests"] == N], timeout=10)
        assert edge[0]["errors"] == 0
        assert collector.stats.pairs == N
        assert collector.stats.received_spans == 2 * N
