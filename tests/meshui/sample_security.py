"""The sample graph's security events: mTLS on every hop between sidecars (one edge still
mixed, mid-migration), denials on one edge and would-be denials on a caller new to the mesh.

``python -m tests.meshui.sample_security REDIS_URL`` writes it (the browser tests and the
screenshots call ``write_secure_graph``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

import redis

from collector.graphwriter import GraphWriter
from proxies.policy.schema import UNAUTHENTICATED
from tests.meshui.sample_graph import write_sample_graph

MIXED = ("frontend", "reviews")  # 62% over mTLS: some reviews instances have no certificate yet
MIXED_SHARE = 0.62
DENIED = ("checkout", "payments")  # a DENY rule refuses some of checkout's calls
DENIED_PER_SECOND = 1
# A caller catalog has not seen before (reviews starts calling it directly): what catalog's
# AUDIT rules would deny.
NEWCOMER = ("reviews", "catalog", 2.0, 0.0, 11.0)


def security_events(source: str, target: str, requests: int) -> Mapping[str, int]:
    """One second of an edge's events (``proxies.telemetry.events``' keys)."""
    if source == UNAUTHENTICATED:
        return {}  # callers outside the mesh come in plaintext
    events = {"mtls": round(requests * MIXED_SHARE) if (source, target) == MIXED else requests}
    if (source, target) == DENIED:
        events["denied"] = DENIED_PER_SECOND
    if (source, target) == NEWCOMER[:2]:
        events["audit_denied"] = requests
    return events


def write_secure_graph(redis_url: str, seconds: int = 60) -> None:
    write_sample_graph(redis_url, seconds=seconds, events=security_events,
                       extra_edges=(NEWCOMER,))


def write_caller(redis_url: str, source: str, target: str, requests: int, **events: int) -> None:
    """One second (now) of ``source -> target``: its requests and its edge events."""
    writer = GraphWriter(clock=time.time)
    writer.add_edge(source, target, requests, events.get("denied", 0), {3: requests})
    for key, count in events.items():
        writer.add_edge_counter(source, target, key, count)
    client = redis.Redis.from_url(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        GraphWriter.queue_writes(pipe, writer.take())
        pipe.execute()
    finally:
        client.close()


if __name__ == "__main__":
    write_secure_graph(sys.argv[1])
