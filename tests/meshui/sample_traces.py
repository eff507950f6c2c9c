"""Traces for the trace pages' tests and screenshots, written the way a collector writes them.

Each span is an OTLP span (``tests.collector.trace_build``) that goes through the real trace
store path: ``TraceStoreConnector`` (summaries, tiers) -> ``RedisTraceExporter`` (the write
script) on a real Redis, as tests/meshui/test_traces_api.py does.

``shop_trace`` is a request through the demo's mesh as the sidecars trace it: frontend ->
catalog -> inventory, a CLIENT span on the caller's sidecar and a SERVER span on the callee's
for each hop, the first call to catalog failing with a 503 and retried (a ``retry`` event and
two SERVER spans under one CLIENT span).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from collector.redis_exporter import redis_client
from collector.stats import CollectorStats
from collector.trace_exporter import RedisTraceExporter
from collector.traceconnector import TraceStoreConfig, TraceStoreConnector
from tests.collector.trace_build import CLIENT, INTERNAL, SERVER, S, trace_id

HOSTILE_NAME = "<img src=x onerror=alert(1)>"


def store(redis_url: str, *spans: S) -> None:
    """``spans`` through the connector and the exporter into the store at ``redis_url``."""
    from tests.collector.trace_build import batch

    async def write() -> None:
        client = redis_client(redis_url)
        config = TraceStoreConfig()
        exporter = RedisTraceExporter(client, config, CollectorStats())
        connector = TraceStoreConnector(exporter, config, exporter.stats)
        connector.consume(batch(*spans))
        connector.flush()
        await exporter.flush()
        await client.aclose()

    asyncio.run(write())


def hex_id(n: int) -> str:
    return trace_id(n).hex()


def shop_trace(n: int, start_s: float, scale: float = 1.0, fail_catalog: bool = False,
               retried: bool = True) -> list[S]:
    """frontend -> catalog -> inventory; span numbers n*10+1..; ``scale`` stretches it.

    Offsets (ms, at scale 1) when ``retried``: frontend SERVER 0-40; its CLIENT to catalog 2-34
    with a retry event at 12.5; catalog SERVER 3-12 (503) and 16-33; catalog's CLIENT to
    inventory 18-30; inventory SERVER 19-29 and its INTERNAL query 20-27. Without the retry
    (no span n*10+3) everything from catalog's second try on moves 13 ms earlier.
    ``fail_catalog``: catalog's (last) answer is a 503 too, and so is the trace's.
    """
    base = n * 10
    shift = 0.0 if retried else 13.0

    def at(ms: float) -> float:
        return start_s + ms * scale / 1000

    def ms(value: float) -> float:
        return value * scale

    answer = 503 if fail_catalog else 200
    spans = [
        S("frontend", n, base + 1, kind=SERVER, name="GET /shop", start_s=at(0), ms=ms(40 - shift),
          version="v1", error=fail_catalog,
          attributes={"http.request.method": "GET", "http.route": "/shop",
                      "http.response.status_code": answer}),
        S("frontend", n, base + 2, parent=base + 1, kind=CLIENT, name="GET catalog", start_s=at(2),
          ms=ms(32 - shift), version="v1", error=fail_catalog,
          attributes={"http.request.method": "GET", "destination.service": "catalog",
                      "url.path": "/items/42", "http.response.status_code": answer},
          events=[("retry", at(12.5), {"attempt": 1, "reason": "5xx"})] if retried else []),
        S("catalog", n, base + 4, parent=base + 2, kind=SERVER, name="GET /items/{id}",
          start_s=at(16 - shift), ms=ms(17), version="v1", error=fail_catalog,
          attributes={"http.route": "/items/{id}", "http.response.status_code": answer}),
        S("catalog", n, base + 5, parent=base + 4, kind=CLIENT, name="GET inventory",
          start_s=at(18 - shift), ms=ms(12), version="v1",
          attributes={"destination.service": "inventory", "http.response.status_code": 200}),
        S("inventory", n, base + 6, parent=base + 5, kind=SERVER, name="GET /stock/{sku}",
          start_s=at(19 - shift), ms=ms(10), version="v1",
          attributes={"http.route": "/stock/{sku}", "http.response.status_code": 200}),
        S("inventory", n, base + 7, parent=base + 6, kind=INTERNAL, name="SELECT stock",
          start_s=at(20 - shift), ms=ms(7), version="v1",
          attributes={"db.system": "postgresql",
                      "db.statement": "SELECT * FROM stock WHERE sku = $1"}),
    ]
    if retried:
        spans.insert(2, S("catalog", n, base + 3, parent=base + 2, kind=SERVER,
                          name="GET /items/{id}", start_s=at(3), ms=ms(9), version="v2",
                          error=True, attributes={"http.route": "/items/{id}",
                                                  "http.response.status_code": 503}))
    return spans


def hostile_trace(n: int, start_s: float) -> list[S]:
    """A trace whose every name came from an attacker: they must show as text."""
    return [
        S(HOSTILE_NAME, n, n * 10 + 1, kind=SERVER, name=HOSTILE_NAME, start_s=start_s, ms=8,
          attributes={HOSTILE_NAME: "<script>window.__xss=1</script>"},
          events=[(HOSTILE_NAME, start_s + 0.002, {"x": "<b>bold</b>"})]),
        S("catalog", n, n * 10 + 2, parent=n * 10 + 1, kind=INTERNAL, name="</script><b>x</b>",
          start_s=start_s + 0.001, ms=3),
    ]


@dataclass(frozen=True)
class SampleTrace:
    trace_id: str
    duration_ms: float  # the root span's
    error: bool
    retried: bool
    start_s: float


def write_sample_traces(redis_url: str, now: float | None = None, count: int = 40,
                        seed: int = 7) -> list[SampleTrace]:
    """``count`` shop traces over the last 10 minutes, a few slow, some retried or failing."""
    now = time.time() if now is None else now
    rng = random.Random(seed)
    spans: list[S] = []
    written = []
    for n in range(1, count + 1):
        start = now - 600 + (n - 1) * (590 / max(count - 1, 1))
        scale = rng.choice([0.4, 0.6, 0.8, 1.0, 1.3]) * (5 if n % 9 == 0 else 1)
        retried, failing = n % 3 == 0, n % 7 == 0
        trace = shop_trace(n, start, scale=scale, fail_catalog=failing, retried=retried)
        spans += trace
        written.append(SampleTrace(hex_id(n), trace[0].ms, failing or retried, retried, start))
    store(redis_url, *spans)
    return written
