"""Spans of a real opentelemetry-sdk app, through a real collector, into the trace store:
searched by service, edge, status and duration, and opened with every span nested."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import redis
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from collector import tracesearch
from collector.traceconnector import TraceStoreConfig
from collector.tracesearch import TraceQuery
from tests.collector.support import running_collector
from tests.polling import eventually

N = 20


def emit(endpoint: str) -> dict[str, str]:
    """shop-web calls shop-api N times; call 7 fails, call 13 is slow. Returns their trace ids."""
    providers = {}
    for service in ("shop-web", "shop-api"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        providers[service] = provider
    web = providers["shop-web"].get_tracer("shop-web")
    api = providers["shop-api"].get_tracer("shop-api")
    ids = {}
    for i in range(N):
        with web.start_as_current_span("GET /cart", kind=trace.SpanKind.SERVER) as root:
            with web.start_as_current_span("GET shop-api", kind=trace.SpanKind.CLIENT) as call:
                call.set_attribute("peer.service", "shop-api")
                with api.start_as_current_span("GET /items/{id}", kind=trace.SpanKind.SERVER) as span:
                    span.set_attribute("http.request.method", "GET")
                    span.set_attribute("http.route", "/items/{id}")
                    span.add_event("meshui.retry", {"attempt": 2, "reason": "<5xx>"})
                    with api.start_as_current_span("SELECT items") as query:
                        query.set_attribute("db.statement", "SELECT * FROM items")
                    if i == 7:
                        span.set_status(Status(StatusCode.ERROR, "boom"))
                        ids["failed"] = format(span.get_span_context().trace_id, "032x")
                    if i == 13:
                        import time

                        time.sleep(0.05)  # the work being traced: a slow call, not synchronisation
                        ids["slow"] = format(root.get_span_context().trace_id, "032x")
    for provider in providers.values():
        assert provider.force_flush(10_000)
        provider.shutdown()
    return ids


async def test_sdk_traces_are_searchable_and_open_with_every_span_nested(redis_url: str) -> None:
    config = replace(TraceStoreConfig(), wait_s=0.2, flush_interval_s=0.05)
    async with running_collector(redis_url, trace_store=config) as collector:
        ids = await asyncio.to_thread(emit, f"http://127.0.0.1:{collector.port}/v1/traces")
        client = redis.Redis.from_url(redis_url)
        try:
            def search(**query: object) -> list[str]:
                found = tracesearch.search_traces(client, TraceQuery(**query))  # type: ignore[arg-type]
                return [t["trace_id"] for t in found["traces"]]

            await eventually(lambda: len(search(service="shop-api")) == N, timeout=10,
                             what="all traces stored")
            assert len(search(source="shop-web", target="shop-api")) == N
            assert len(search(source="unknown", target="shop-web")) == N
            assert search(status="error") == [ids["failed"]]
            assert search(min_ms=40) == [ids["slow"]]
            assert len(search(operation="GET /items/{id}", status="ok")) == N - 1

            opened = tracesearch.fetch_trace(client, ids["failed"])
        finally:
            client.close()
    assert opened is not None and opened["span_count"] == 4 and opened["error"]
    assert [(s["name"], s["depth"], s["service"], s["kind"]) for s in opened["spans"]] == [
        ("GET /cart", 0, "shop-web", "server"),
        ("GET shop-api", 1, "shop-web", "client"),
        ("GET /items/{id}", 2, "shop-api", "server"),
        ("SELECT items", 3, "shop-api", "internal"),
    ]
    spans = opened["spans"]
    assert [s["parent_span_id"] for s in spans] == [None, *(s["span_id"] for s in spans[:-1])]
    served = spans[2]
    assert served["status"] == "error" and served["status_message"] == "boom"
    assert served["events"][0]["name"] == "meshui.retry"
    assert served["events"][0]["attributes"] == {"attempt": 2, "reason": "<5xx>"}
    assert spans[3]["attributes"]["db.statement"] == "SELECT * FROM items"
    assert collector.stats.trace_spans_stored == 4 * N
