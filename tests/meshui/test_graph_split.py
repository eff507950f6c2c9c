"""The observed traffic split, end to end: OTLP from a sidecar's own encoder and from a real
opentelemetry-sdk span pair, through the real collector and Redis, to ``/api/v1/graph``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.test import AsyncClient
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from proxies.telemetry.aggregate import RequestAggregator
from proxies.telemetry.encode import MetricsEncoder, resource_proto
from proxies.telemetry.model import Resource
from tests.collector.support import ahttp, running_collector
from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)

PB = {"Content-Type": "application/x-protobuf"}
T0 = 1_700_000_000_000_000_000


def sidecar_export() -> bytes:
    """frontend's sidecar: catalog v1 answered 8 calls, v2 2, and 2 found no instance (503)."""
    aggregator = RequestAggregator(start_ns=T0)
    for version, calls, status, seconds in (("v1", 8, 200, 0.004), ("v2", 2, 200, 0.040),
                                            ("", 2, 503, 0.001)):
        for _ in range(calls):
            aggregator.record("outbound", "frontend", "catalog", version, status, False, seconds)
    interval = aggregator.take(T0 + 1_000_000_000)
    encoder = MetricsEncoder(resource_proto(Resource("frontend", "v1", "frontend-1")))
    return encoder.encode(interval.unique, interval.start_ns, interval.end_ns)


def sdk_calls(endpoint: str) -> None:
    """shop-web calls shop-api 4 times: 3 answered by shop-api 2.1.0, 1 by 2.2.0."""
    def provider(service: str, version: str) -> TracerProvider:
        made = TracerProvider(resource=SdkResource.create(
            {"service.name": service, "service.version": version}))
        made.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        return made

    web = provider("shop-web", "1.0.0")
    apis = {version: provider("shop-api", version) for version in ("2.1.0", "2.2.0")}
    for version in ("2.1.0", "2.1.0", "2.2.0", "2.1.0"):
        with web.get_tracer("shop-web").start_as_current_span("GET /item", kind=trace.SpanKind.CLIENT):
            # In-process propagation: the server span's parent is the current client span.
            tracer = apis[version].get_tracer("shop-api")
            with tracer.start_as_current_span("GET /item", kind=trace.SpanKind.SERVER) as span:
                span.set_attribute("http.response.status_code", 200)
    for made in (web, *apis.values()):
        made.shutdown()


def split(graph: dict[str, Any], source: str, target: str) -> dict[str, Any] | None:
    for edge in graph["edges"]:
        if (edge["source"], edge["target"]) == (source, target):
            return edge  # type: ignore[no-any-return]
    return None


async def test_the_graph_api_shows_each_edge_s_split_between_its_target_s_versions(
    meshui_settings: Any, redis_url: str
) -> None:
    meshui_settings.MESHUI_PUBLIC_READ = True
    browser = AsyncClient()
    async with running_collector(redis_url) as collector:
        base = f"http://127.0.0.1:{collector.port}"
        status, _, _ = await ahttp("POST", f"{base}/v1/metrics", sidecar_export(), PB)
        assert status == 200
        await asyncio.to_thread(sdk_calls, f"{base}/v1/traces")

        async def graph() -> dict[str, Any] | None:
            response = await browser.get("/api/v1/graph")
            assert response.status_code == 200
            body: dict[str, Any] = response.json()
            sidecar, sdk = split(body, "frontend", "catalog"), split(body, "shop-web", "shop-api")
            done = sidecar and sdk and sidecar["requests"] == 12 and sdk["requests"] == 4
            return body if done else None

        body = await eventually(graph, timeout=20, what="both edges in /api/v1/graph")

    catalog = split(body, "frontend", "catalog")
    assert catalog is not None
    assert catalog["errors"] == 2  # the calls no instance answered: in the totals only
    assert list(catalog["by_version"]) == ["v1", "v2"]
    v1, v2 = catalog["by_version"]["v1"], catalog["by_version"]["v2"]
    assert (v1["requests"], v1["errors"], v1["share"]) == (8, 0, 0.6667)
    assert (v2["requests"], v2["errors"], v2["share"]) == (2, 0, 0.1667)
    assert v1["rps"] == round(8 / 60, 3)
    # Each version's latency is its own: ~4 ms for v1, ~40 ms for v2 (histogram within ~4.5%).
    assert 3.8 < v1["p50_ms"] < 4.2 and 38 < v2["p50_ms"] < 42

    api = split(body, "shop-web", "shop-api")
    assert api is not None
    assert {version: (entry["requests"], entry["share"]) for version, entry in api["by_version"].items()} == {
        "2.1.0": (3, 0.75), "2.2.0": (1, 0.25)}
