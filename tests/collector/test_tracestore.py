"""The trace store on a real Redis: whole traces in, searched by index, within a budget and a TTL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis

from collector import tracesearch
from collector.redis_exporter import redis_client
from collector.stats import CollectorStats
from collector.trace_exporter import RedisTraceExporter
from collector.traceconnector import TraceStoreConfig, TraceStoreConnector
from collector.tracesearch import TraceQuery
from collector.tracestore import BYTES, PREFIX
from tests.clock import FakeClock
from tests.collector.trace_build import CLIENT, SERVER, S, batch, trace_id

NOW = time.time()


class Store:
    """Connector + exporter on one Redis, with a wall clock the test moves."""

    def __init__(self, client: aredis.Redis, **config: Any) -> None:
        self.client = client
        self.wall = FakeClock(NOW)
        self.monotonic = FakeClock(100.0)
        self.config = TraceStoreConfig(**config)
        self.stats = CollectorStats()
        self.exporter = RedisTraceExporter(client, self.config, self.stats, clock=self.wall)
        self.connector = TraceStoreConnector(self.exporter, self.config, self.stats, clock=self.monotonic)

    async def put(self, *spans: S) -> None:
        self.connector.consume(batch(*spans))
        self.connector.flush()
        await self.exporter.flush()

    async def search(self, **query: Any) -> list[str]:
        found = await tracesearch.asearch_traces(self.client, TraceQuery(**query), self.wall())
        return [t["trace_id"] for t in found["traces"]]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aredis.Redis]:
    client = redis_client(redis_url)
    yield client
    await client.aclose()


def call(n: int, ms: float = 5.0, error: bool = False, at: float = NOW - 10, web: str = "web") -> list[S]:
    """Trace n: web calls api (CLIENT span 1, SERVER child 2), api's span has a policy event."""
    return [S(web, n, 10 * n + 1, kind=CLIENT, name="GET api", start_s=at, ms=ms,
              attributes={"destination.service": "api"}),
            S("api", n, 10 * n + 2, parent=10 * n + 1, kind=SERVER, start_s=at + 0.0001, ms=ms * 0.9,
              error=error, attributes={"http.request.method": "GET", "http.route": "/items/{id}",
                                       "http.response.status_code": 500 if error else 200},
              events=[("meshui.retry", at + 0.0002, {"attempt": 2})])]


def tid(n: int) -> str:
    return trace_id(n).hex()


async def test_a_trace_is_found_by_service_edge_operation_status_and_duration(client: aredis.Redis) -> None:
    store = Store(client)
    await store.put(*call(1, ms=5), *call(2, ms=50, error=True), *call(3, ms=500, at=NOW - 5),
                    S("other", 4, 41, start_s=NOW - 1))

    assert await store.search() == [tid(4), tid(3), tid(2), tid(1)]
    assert await store.search(service="api") == [tid(3), tid(2), tid(1)]
    assert await store.search(source="web", target="api") == [tid(3), tid(2), tid(1)]
    assert await store.search(source="unknown", target="other") == [tid(4)]
    assert await store.search(operation="GET /items/{id}", min_ms=40) == [tid(3), tid(2)]
    assert await store.search(status="error") == [tid(2)]
    assert await store.search(status="ok", service="web") == [tid(3), tid(1)]
    assert await store.search(min_ms=10, max_ms=100) == [tid(2)]
    assert await store.search(trace_id=tid(2)) == [tid(2)]
    assert await store.search(trace_id=tid(2), status="ok") == []
    assert await store.search(start=NOW - 7, end=NOW - 2) == [tid(3)]
    assert await store.search(limit=2) == [tid(4), tid(3)]
    assert await store.search(service="nobody") == []

    (summary,) = (await tracesearch.asearch_traces(client, TraceQuery(trace_id=tid(2)), NOW))["traces"]
    assert summary["error"] and summary["kept"] and summary["span_count"] == 2
    assert summary["duration_ms"] == 50.0 and summary["root"] == {"service": "web", "operation": "GET api"}
    assert summary["edges"] == [{"source": "web", "target": "api"}]
    assert summary["services"] == ["web", "api"]


async def test_an_opened_trace_has_every_span_nested_with_its_attributes_and_events(
        client: aredis.Redis) -> None:
    store = Store(client)
    await store.put(*call(1, error=True))
    trace = await tracesearch.afetch_trace(client, tid(1))
    assert trace is not None
    client_span, server_span = trace["spans"]
    assert (client_span["depth"], client_span["parent_span_id"], client_span["kind"]) == (0, None, "client")
    assert server_span["parent_span_id"] == client_span["span_id"] and server_span["depth"] == 1
    assert server_span["status"] == "error" and server_span["status_message"] == "boom"
    assert server_span["attributes"]["http.route"] == "/items/{id}"
    assert server_span["events"][0]["name"] == "meshui.retry"
    assert server_span["events"][0]["attributes"] == {"attempt": 2}
    assert server_span["service"] == "api" and abs(server_span["offset_ms"] - 0.1) < 0.01
    assert await tracesearch.afetch_trace(client, tid(9)) is None


async def test_later_spans_of_a_stored_trace_join_it(client: aredis.Redis) -> None:
    store = Store(client)
    first, second = call(1)
    await store.put(second)  # the server span first: no edge yet, no root
    summary = (await tracesearch.asearch_traces(client, TraceQuery(trace_id=tid(1)), NOW))["traces"][0]
    assert summary["root"] is None and summary["span_count"] == 1
    await store.put(first)
    summary = (await tracesearch.asearch_traces(client, TraceQuery(trace_id=tid(1)), NOW))["traces"][0]
    assert summary["root"] == {"service": "web", "operation": "GET api"} and summary["span_count"] == 2
    assert set(summary["services"]) == {"web", "api"}
    assert await store.search(service="web") == [tid(1)]
    trace = await tracesearch.afetch_trace(client, tid(1))
    assert trace is not None and [s["depth"] for s in trace["spans"]] == [0, 1]


async def test_a_batch_sent_again_after_a_lost_reply_is_stored_once(client: aredis.Redis) -> None:
    store = Store(client)
    store.connector.consume(batch(*call(1)))
    store.connector.flush()
    store.exporter._seal()
    resent = list(store.exporter._unconfirmed)
    await store.exporter.flush()
    store.exporter._unconfirmed = resent  # as if the reply had been lost
    await store.exporter.flush()
    summary = (await tracesearch.asearch_traces(client, TraceQuery(trace_id=tid(1)), NOW))["traces"][0]
    assert summary["span_count"] == 2 and store.stats.trace_spans_stored == 2


async def redis_bytes(client: aredis.Redis) -> int:
    """What the trace store's keys take in Redis, by MEMORY USAGE (every key of the store)."""
    total = 0
    async for key in client.scan_iter(match=PREFIX + "*", count=1000):
        if not key.startswith((PREFIX + "flush:").encode()):
            total += await client.memory_usage(key, samples=0) or 0
    return total


async def test_past_its_budget_the_store_drops_the_oldest_common_traces_first_and_counts_them(
        client: aredis.Redis) -> None:
    budget = 1024 * 1024
    store = Store(client, max_bytes=budget)
    errors = set()
    for n in range(1, 2001):
        await store.put(*call(n, error=n % 100 == 0, at=NOW - 1000 + n * 0.1))
        if n % 100 == 0:
            errors.add(tid(n))
        if n % 250 == 0:
            accounted = int(await client.get(BYTES) or 0)
            assert accounted <= budget
            assert await redis_bytes(client) <= budget, "the store grew past its budget"
    dropped = store.stats.traces_dropped["evicted"]
    assert dropped > 0 and store.stats.trace_spans_dropped["evicted"] == 2 * dropped
    stored = await store.search(limit=1000, start=NOW - 2000)
    assert len(stored) == 2000 - dropped
    # The oldest went first, and every error trace (kept tier) outlived every common one.
    assert errors <= set(stored)
    commons = [tid(n) for n in range(1, 2001) if tid(n) not in errors]
    kept_commons = len(stored) - len(errors)
    assert set(stored) - errors == set(commons[len(commons) - kept_commons:])
    assert store.stats.trace_store_bytes <= budget


async def test_when_only_kept_traces_remain_the_oldest_of_them_go(client: aredis.Redis) -> None:
    store = Store(client, max_bytes=1024 * 1024)
    for n in range(1, 1501):
        await store.put(*call(n, error=True, at=NOW - 1000 + n * 0.1))
    stored = await store.search(limit=1000, start=NOW - 2000)
    dropped = store.stats.traces_dropped["evicted"]
    assert dropped > 0 and stored[-1] == tid(dropped + 1) and stored[0] == tid(1500)


async def test_a_trace_expires_after_the_ttl_and_is_counted(client: aredis.Redis) -> None:
    store = Store(client, ttl_s=60)
    await store.put(*call(1, at=NOW - 30))
    assert 0 < await client.ttl(b"meshui:traces:t:" + trace_id(1)) <= 60 + 120
    store.wall.advance(31)
    await store.put(*call(2, at=store.wall() - 1))  # any write sweeps what has expired
    assert await store.search(start=NOW - 3600, end=store.wall()) == [tid(2)]
    assert await tracesearch.afetch_trace(client, tid(1)) is None
    assert (store.stats.traces_expired, store.stats.trace_spans_expired) == (1, 2)
    assert await client.zcard(b"meshui:traces:i:s:web") == 1


async def test_a_span_marked_meshui_keep_keeps_its_trace_in_preference(client: aredis.Redis) -> None:
    store = Store(client)
    await store.put(S("web", 1, 1, start_s=NOW - 2, attributes={"meshui.keep": True}),
                    S("web", 2, 2, start_s=NOW - 1))
    assert [t["kept"] for t in (await tracesearch.asearch_traces(client, TraceQuery(), NOW))["traces"]] == [
        False, True]


async def test_while_redis_is_down_traces_wait_in_a_bounded_backlog_and_the_overflow_is_counted() -> None:
    down = redis_client("redis://127.0.0.1:1/0", socket_timeout_s=0.5)
    store = Store(down, max_backlog_bytes=4000)
    try:
        for n in range(1, 21):
            await store.put(*call(n))
        assert store.stats.trace_write_errors == 20 and not store.stats.redis_available
        assert store.stats.traces_dropped["backlog_full"] > 0
        kept = store.stats.trace_backlog_spans
        assert kept + store.stats.trace_spans_dropped["backlog_full"] == 40
        await store.exporter.shutdown()
        assert store.stats.trace_spans_dropped["shutdown"] == kept and store.stats.trace_backlog_spans == 0
    finally:
        await down.aclose()
