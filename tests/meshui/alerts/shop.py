"""A small shop's recent traffic in a real Valkey, and the alert evaluator run against a
browser test's meshui from outside it: what the alert pages' browser test and their
screenshots share.

    frontend -> checkout -> payments -> ledger      (payments fails 30 % while it breaches)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import redis

from collector.graphwriter import GraphWriter
from proxies.telemetry import histogram
from tests.meshui.browser import ROOT, server_env

BREACH_ERRORS = 0.3


# (source, target, target's version, target's instance, latency ms)
EDGES = [("frontend", "checkout", "v1", "checkout-1", 40.0),
         ("checkout", "payments", "v2", "payments-1", 120.0),
         ("payments", "ledger", "v1", "ledger-1", 6.0)]
PER_SECOND = 20


def write_shop(redis_url: str, seconds: range, breach: Collection[int] = ()) -> None:
    """Every second of ``seconds`` (epoch seconds, any of them in the future): 20 calls a
    second on each edge, checkout -> payments failing BREACH_ERRORS of them in the seconds
    of ``breach``, as the collector writes them (graph hashes and series)."""
    hot = set(breach)
    clock = {"now": 0.0}
    writer = GraphWriter(clock=lambda: clock["now"])
    for second in seconds:
        clock["now"] = second + 0.5
        for source, target, version, instance, latency in EDGES:
            errors = round(PER_SECOND * BREACH_ERRORS) if target == "payments" and second in hot else 0
            bucket = {histogram.bucket_index(latency): PER_SECOND}
            writer.add_edge(source, target, PER_SECOND, errors, bucket, version=version)
            writer.add_node(target, version, PER_SECOND, errors, bucket, instance=instance)
    client = redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    GraphWriter.queue_writes(pipe, writer.take())
    pipe.execute()
    client.close()


EVALUATE = """
import json, sys, django
django.setup()
from meshui.alerts.evaluator import Evaluator
for at in sys.argv[1:]:
    print(json.dumps(Evaluator(clock=lambda: float(at)).run().as_json()))
"""


def evaluate(redis_url: str, workdir: Path, *times: float) -> list[dict[str, Any]]:
    """An evaluation cycle at each epoch second of ``times``, in order, in a process of its
    own on the server's database and Redis (as the Celery worker runs them); the reports."""
    done = subprocess.run([sys.executable, "-c", EVALUATE, *map(str, times)], cwd=ROOT,
                          env=server_env(redis_url, workdir), check=True, timeout=120,
                          capture_output=True, text=True)
    reports = [json.loads(line) for line in done.stdout.strip().splitlines()[-len(times):]]
    for report in reports:
        assert report["ran"] and not report["skipped"], report
    return reports
