"""Benchmark: this tree's collector hot paths against another commit's, interleaved in one run.

    .venv/bin/python bench/collector_ab.py --base <commit> [--rounds 5] [--seconds 1.5]

A change to the collector's write or read path records its before/after here. The base
commit is checked out into a temporary git worktree; every round runs one child process per
tree (the order reversed every other round), each measuring three things with its own code:

- **spans**: bench/collector_ingest.py's export of 512 spans (256 client/server pairs with a
  ``service.version``), protobuf decode + span pairing + graph writer increments;
- **points**: a sidecar's export (MetricsEncoder: the mesh below, one data point per edge,
  version and status), decode + sidecar-metrics connector + graph writer increments;
- **read**: ``build_graph`` of a 60 s window, 60 per-second hashes that the tree's own writer
  filled from one such export a second, as redis-py hands them over (bytes). Each tree reads
  what it writes, so a tree that stores more fields pays for reading them.

All figures are in the child's own CPU time (``time.process_time``), so time other
processes hold the core is not counted. Ratios are head/base within each round, so drift on
the machine between rounds cancels out; the base's own spread across rounds says how much
noise there is. Writes
``## Collector A/B`` in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.results import paired_ratios, report, spread  # noqa: E402

# (source, target, requests per second, versions of the target): the sample mesh of
# tests/meshui/sample_graph.py, the canary-style splits included.
MESH = [
    ("unknown", "frontend", 42, ["v1"]), ("frontend", "catalog", 30, ["v1", "v2"]),
    ("frontend", "reviews", 18, ["v1", "v2", "v3"]), ("frontend", "checkout", 4, ["v1"]),
    ("frontend", "auth", 42, ["v4"]), ("frontend", "search", 12, ["v1"]),
    ("search", "catalog", 12, ["v1", "v2"]), ("catalog", "inventory", 42, ["v1"]),
    ("reviews", "ratings", 18, ["v1"]), ("checkout", "payments", 4, ["v2"]),
    ("checkout", "inventory", 4, ["v1"]), ("checkout", "auth", 4, ["v4"]),
    ("payments", "ledger", 4, ["v1"]),
]

# Runs inside one tree (argv: tree, seconds, mesh as JSON) and prints its figures as JSON.
# It may use only what both trees have: collector_ingest's payload/full and the
# collector's and sidecar's public classes. Every figure is in process CPU time.
CHILD = r"""
import json, random, statistics, sys, time
tree, seconds, mesh = sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3])
sys.path.insert(0, tree)
from bench.collector_ingest import full, payload
from collector import otlp_metrics, otlp_traces
from collector.graphstore import build_graph
from collector.graphwriter import GraphWriter
from collector.sidecar_metrics import SidecarMetricsConnector
from proxies.telemetry.aggregate import RequestAggregator
from proxies.telemetry.encode import MetricsEncoder, resource_proto
from proxies.telemetry.model import Resource

T0 = 1_700_000_000_000_000_000


def rate(fn, body, seconds):
    # Items per second of this process's own CPU time: on a busy machine wall time also
    # counts the time other processes held the core.
    fn(body)
    items, start = 0, time.process_time()
    while (elapsed := time.process_time() - start) < seconds:
        items += fn(body)
    return items / elapsed


rng = random.Random(7)
aggregator = RequestAggregator(start_ns=T0)
for source, target, rps, versions in mesh:
    for i in range(rps):
        version = versions[i % len(versions)]
        status = 503 if rng.random() < 0.01 else 200
        aggregator.record("outbound", source, target, version, status, True,
                          0.01 * rng.lognormvariate(0, 0.45))
interval = aggregator.take(T0 + 1_000_000_000)
encoder = MetricsEncoder(resource_proto(Resource("frontend", "v1", "frontend-1")))
export = encoder.encode(interval.unique, interval.start_ns, interval.end_ns)

def points_run():
    writer = GraphWriter()
    connector = SidecarMetricsConnector(writer, started_ns=0)
    def run(body):
        batch = otlp_metrics.decode_protobuf(body)
        connector.consume(batch)
        if writer.pending_fields > 10_000:
            writer.take()
        return len(batch.points)
    return run

now = 1_700_000_000.0
hashes = []
for back in range(60):
    writer = GraphWriter(clock=lambda back=back: now - back)
    SidecarMetricsConnector(writer, started_ns=0).consume(otlp_metrics.decode_protobuf(export))
    for fields in writer.take().values():
        hashes.append({name.encode(): str(value).encode() for name, value in fields.items()})
reads = []
for _ in range(7):
    started = time.process_time()
    for _ in range(10):
        build_graph(hashes, 60, now)
    reads.append((time.process_time() - started) / 10 * 1000)

spans_pb = payload().SerializeToString()
print(json.dumps({
    "spans": rate(full(otlp_traces.decode_protobuf), spans_pb, seconds),
    "points": rate(points_run(), export, seconds),
    "read_ms": min(reads),
    "fields": sum(len(h) for h in hashes) / len(hashes),
    "points_per_export": len(interval.unique),
}))
"""

MEASURES = (("spans", "spans/s"), ("points", "points/s"), ("read_ms", "ms per 60 s read"))


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def measure(tree: Path, seconds: float) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(seconds), json.dumps(MESH)],
                         cwd=tree, check=True, capture_output=True, text=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="commit to compare against (e.g. main)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.5, help="per rate measurement")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args()
    base_sha, head_sha = git("rev-parse", "--short", args.base), git("rev-parse", "--short", "HEAD")
    # Uncommitted code changes make "at <sha>" untrue; a rewritten RESULTS.md does not.
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/RESULTS.md")
    dirty = " (with uncommitted changes)" if changed else ""
    tmp = Path(tempfile.mkdtemp(prefix="collector-ab-"))
    base_tree = tmp / "base"
    git("worktree", "add", "--detach", "-q", str(base_tree), base_sha)
    results: dict[str, list[dict[str, float]]] = {"base": [], "head": []}
    try:
        for round_no in range(args.rounds):
            order = [("base", base_tree), ("head", ROOT)]
            for label, tree in order if round_no % 2 == 0 else reversed(order):
                results[label].append(one := measure(tree, args.seconds))
                print(f"round {round_no + 1} {label}: " + ", ".join(
                    f"{one[key]:,.2f} {unit}" for key, unit in MEASURES), flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, check=False)

    base, head = results["base"], results["head"]
    lines = [
        "## Collector A/B",
        "",
        f"`bench/collector_ab.py --base {base_sha}` at {head_sha}{dirty}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, one process per tree and round; "
        f"{args.rounds} interleaved rounds, rates over {args.seconds:g} s of process CPU time. "
        "spans: 512-span export (bench/collector_ingest.py), decode + pairing + writer; "
        "points: a sidecar export of "
        f"{head[0]['points_per_export']:.0f} data points (13 edges, 1-3 versions each), decode + "
        "connector + writer; read: `build_graph` of 60 hashes the tree's own writer filled "
        f"(base {base[0]['fields']:.0f} fields a hash, head {head[0]['fields']:.0f}).",
        "",
        "| measure | base (median) | head (median) | head/base, median of rounds | "
        "per-round ratios (min..max) | base's own spread |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for key, unit in MEASURES:
        b, h = [r[key] for r in base], [r[key] for r in head]
        ratios = paired_ratios(h, b)
        lines.append(
            f"| {unit} | {statistics.median(b):,.2f} | {statistics.median(h):,.2f} | "
            f"{statistics.median(ratios):.3f}x | {min(ratios):.2f}..{max(ratios):.2f} | "
            f"±{spread(b) * 100:.1f}% |")
    lines.append("")
    report(lines, write=not args.no_write)


if __name__ == "__main__":
    main()
