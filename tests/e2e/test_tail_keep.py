"""Tail keep end to end: a slow request's trace is stored whole although nothing was sampled.

frontend -> catalog -> inventory through real sidecars, meshui, the collector and Valkey,
with head sampling at 0. catalog's sidecar delays every call to inventory by 400 ms (a
fault), and every sidecar counts 250 ms as slow. So frontend's and catalog's sidecars see
the request end slow and export their spans with ``meshui.keep``; inventory's sidecar saw a
fast request and holds its span in its ring, until the collector names the trace to meshui
and meshui asks every sidecar for it (``export_traces``). The trace store then holds all
five spans of the three services: GET /api/v1/traces finds it whole, in the kept tier.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from meshui.demo.mesh import Mesh
from meshui.demo.topology import Instance
from tests.e2e.meshes import small_mesh
from tests.polling import wait_until

POLICY = """
services:
  inventory:
    routes:
      - name: slow-stock
        match: {path_prefix: /stock}
        fault: {delay: {fixed_ms: 400}}
"""


@pytest.fixture(scope="module")
def mesh(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    redis_url = f"{redis_server_url}/13"
    redis.Redis.from_url(redis_url).flushdb()
    instances = (Instance("frontend", "v1"), Instance("catalog", "v1"), Instance("inventory", "v1"))
    with small_mesh(tmp_path_factory.mktemp("tailkeep"), "tailkeep", instances, policy=POLICY,
                    redis_url=redis_url,
                    extra_env=(("MESHUI_SIDECAR_TAIL_SLOW_MS", "250"),)) as mesh:
        yield mesh


def api(mesh: Mesh, path: str, **params: Any) -> Any:
    response = httpx.get(f"{mesh.config.dashboard_url}api/v1/{path}", params=params, timeout=10,
                         trust_env=False)
    response.raise_for_status()
    return response.json()


def test_a_slow_unsampled_request_is_stored_as_a_whole_trace_of_all_three_services(mesh: Mesh) -> None:
    trace_id = secrets.token_hex(16)
    # Our own unsampled traceparent, so the trace id is known: every sidecar follows its flag.
    response = httpx.get(mesh.config.inbound_url("frontend") + "/", timeout=10, trust_env=False,
                         headers={"host": "frontend",
                                  "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-00"})
    assert response.status_code == 200
    assert "x-meshui-keep" not in response.headers

    def whole() -> dict[str, Any] | None:
        found = api(mesh, "traces", trace_id=trace_id)["traces"]
        if found and set(found[0]["services"]) == {"frontend", "catalog", "inventory"}:
            return found[0]
        return None

    summary = wait_until(whole, timeout=30, interval=0.25, what="the trace with all three services")
    assert summary["kept"] is True and summary["duration_ms"] >= 400

    trace = api(mesh, f"traces/{trace_id}")
    spans = trace["spans"]
    assert sorted((s["service"], s["kind"]) for s in spans) == [
        ("catalog", "client"), ("catalog", "server"), ("frontend", "client"), ("frontend", "server"),
        ("inventory", "server")]
    assert all(s["attributes"]["meshui.keep"] is True for s in spans)
    reasons = {(s["service"], s["kind"]): s["attributes"]["meshui.keep.reason"] for s in spans}
    # Only the control plane could have asked inventory's sidecar: its own request was fast.
    assert reasons["inventory", "server"] == "remote"
    assert reasons["catalog", "client"] == "slow"
    # Nested as the calls were: each server span's parent is its caller's client span.
    by_id = {s["span_id"]: s for s in spans}
    inventory = next(s for s in spans if s["service"] == "inventory")
    assert by_id[inventory["parent_span_id"]]["service"] == "catalog"
    assert [s["parent_missing"] for s in spans].count(False) == 4  # only the root's parent is ours

    # Kept spans are exemplars too: the slow call is its heatmap cell's trace.
    def exemplar() -> dict[str, Any] | None:
        heatmap = api(mesh, "heatmap", source="catalog", target="inventory", window=300, step=10)
        return next((x for x in heatmap["exemplars"] if x["trace_id"] == trace_id), None)

    found = wait_until(exemplar, timeout=20, what="the kept call as its cell's exemplar")
    client = next(s for s in spans if (s["service"], s["kind"]) == ("catalog", "client"))
    assert found["span_id"] == client["span_id"] and found["value_ms"] >= 400


def metric(mesh: Mesh, index: int, name: str) -> float:
    """One series of a sidecar's admin /metrics (``index``: its place in the instances)."""
    text = httpx.get(f"http://{mesh.config.host}:{mesh.config.ports(index).admin}/metrics",
                     timeout=5, trust_env=False).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in the sidecar's metrics")


def test_a_fast_unsampled_request_is_held_never_shipped(mesh: Mesh) -> None:
    """The telemetry tax stays low: a sidecar ships only kept spans; the rest age out of its ring."""
    trace_id = secrets.token_hex(16)
    response = httpx.get(mesh.config.inbound_url("inventory") + "/stock", timeout=10, trust_env=False,
                         headers={"host": "inventory", "x-meshui-source": "tester",
                                  "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-00"})
    assert response.status_code == 200

    assert metric(mesh, 2, "meshui_tail_ring_records") >= 1
    for index in range(3):  # every span a sidecar exported (or still queues) was a kept one
        shipped = (metric(mesh, index, 'meshui_telemetry_exported_total{signal="spans"}')
                   + metric(mesh, index, "meshui_telemetry_queue_spans"))
        assert shipped == metric(mesh, index, "meshui_tail_spans_exported_total") >= 1
    assert api(mesh, "traces", trace_id=trace_id)["traces"] == []
