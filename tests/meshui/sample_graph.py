"""A realistic ten-service graph written into Redis as collectors would write it."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import redis

from collector.graphwriter import GraphWriter
from proxies.telemetry import histogram

# (source, target, requests per second, error rate, median latency ms)
EDGES = [
    ("unknown", "frontend", 42.0, 0.002, 38.0),
    ("frontend", "catalog", 30.0, 0.001, 9.0),
    ("frontend", "reviews", 18.0, 0.03, 22.0),
    ("frontend", "checkout", 4.0, 0.0, 55.0),
    ("frontend", "auth", 42.0, 0.0, 2.5),
    ("frontend", "search", 12.0, 0.004, 17.0),
    ("search", "catalog", 12.0, 0.0, 8.0),
    ("catalog", "inventory", 42.0, 0.0, 3.0),
    ("reviews", "ratings", 18.0, 0.08, 12.0),
    ("checkout", "payments", 4.0, 0.012, 120.0),
    ("checkout", "inventory", 4.0, 0.0, 3.2),
    ("checkout", "auth", 4.0, 0.0, 2.4),
    ("payments", "ledger", 4.0, 0.0, 6.0),
]
VERSIONS = {
    "frontend": ["v1"], "catalog": ["v1", "v2"], "reviews": ["v1", "v2", "v3"],
    "checkout": ["v1"], "auth": ["v4"], "search": ["v1"], "inventory": ["v1"],
    "ratings": ["v1"], "payments": ["v2"], "ledger": ["v1"],
}


def latency(count: int, median_ms: float, rng: random.Random) -> dict[int, int]:
    buckets: Counter[int] = Counter()
    for _ in range(count):
        buckets[histogram.bucket_index(median_ms * rng.lognormvariate(0, 0.45))] += 1
    return dict(buckets)


# (source, target, requests in one second) -> the edge events of that second, by key.
EdgeEvents = Callable[[str, str, int], Mapping[str, int]]


def write_sample_graph(redis_url: str, seconds: int = 60, seed: int = 7,
                       events: EdgeEvents | None = None,
                       extra_edges: tuple[tuple[str, str, float, float, float], ...] = ()) -> None:
    """Write ``seconds`` of traffic ending now, as the collector does; ``events`` adds
    edge events (sidecar counters) to each second, ``extra_edges`` more edges to EDGES."""
    rng = random.Random(seed)
    now = time.time()
    client = redis.Redis.from_url(redis_url)
    for back in range(seconds):
        writer = GraphWriter(clock=lambda back=back: now - back)
        served: dict[str, list[Any]] = {}
        for src, dst, rps, error_rate, median in (*EDGES, *extra_edges):
            n = max(1, int(rng.gauss(rps, rps * 0.1)))
            x = sum(1 for _ in range(n) if rng.random() < error_rate)
            lat = latency(n, median, rng)
            writer.add_edge(src, dst, n, x, lat)
            for key, count in (events(src, dst, n) if events else {}).items():
                if count:
                    writer.add_edge_counter(src, dst, key, count)
            acc = served.setdefault(dst, [0, 0, Counter()])
            acc[0] += n
            acc[1] += x
            acc[2].update(lat)
        for service, (n, x, lat) in served.items():
            versions = VERSIONS.get(service, ["v1"])
            share = n // len(versions)
            for i, version in enumerate(versions):
                part = n - share * (len(versions) - 1) if i == 0 else share
                writer.add_node(service, version, part, x if i == 0 else 0,
                                dict(lat) if i == 0 else {})
        pipe = client.pipeline(transaction=False)
        GraphWriter.queue_writes(pipe, writer.take())
        pipe.execute()
    client.close()
