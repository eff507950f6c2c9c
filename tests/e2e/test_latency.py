"""Where the time goes, through real sidecars: heatmaps, exemplars and traces of the shop.

frontend -> catalog -> inventory, with reviews beside catalog on the product page. catalog's
policy delays the product page's item lookup by 850 ms (a fault the frontend's sidecar
injects); inventory runs two instances, one of which answers 503 to everything, balanced
round robin without outlier detection, so a catalog -> inventory call that first reaches the
bad one is retried on the good one. Requests carry a sampled ``traceparent``, so every
sidecar on the way records its span (the mesh's own head sampling is off).
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
from tests.polling import settled, wait_until

POLICY = """
services:
  catalog:
    routes:
      - name: slow-item
        match: {path_prefix: /items/42}
        fault:
          delay: {fixed_ms: 850, percent: 100}
  inventory:
    load_balancer: round_robin
    outlier_detection: {consecutive_5xx: null}
"""
SLOW_MS = 850


@pytest.fixture(scope="module")
def mesh(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    redis_url = f"{redis_server_url}/14"
    redis.Redis.from_url(redis_url).flushdb()
    instances = (Instance("frontend", "v1"), Instance("catalog", "v1"), Instance("reviews", "v1"),
                 Instance("inventory", "v1", failure_rate=0.0),
                 Instance("inventory", "v1", failure_rate=1.0))
    with small_mesh(tmp_path_factory.mktemp("latency"), "latency", instances, policy=POLICY,
                    redis_url=redis_url) as mesh:
        yield mesh


def api(mesh: Mesh, path: str, **params: Any) -> Any:
    response = httpx.get(f"{mesh.config.dashboard_url}api/v1/{path}", params=params, timeout=10,
                         trust_env=False)
    response.raise_for_status()
    return response.json()


def sampled_get(mesh: Mesh, path: str) -> tuple[int, str]:
    """A request to the frontend with a new sampled trace; its status and trace id."""
    trace_id = secrets.token_hex(16)
    headers = {"host": "frontend", "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    response = httpx.get(mesh.config.inbound_url("frontend") + path, headers=headers, timeout=10,
                         trust_env=False)
    return response.status_code, trace_id


def edge_requests(mesh: Mesh, source: str, target: str) -> int:
    edges = api(mesh, "graph", window=3600)["edges"]
    return next((e["requests"] for e in edges if (e["source"], e["target"]) == (source, target)), 0)


def heatmap_requests(mesh: Mesh, source: str, target: str) -> int:
    heatmap = api(mesh, "heatmap", source=source, target=target, window=3600, step=60)
    return sum(sum(column["counts"]) for column in heatmap["columns"])


def trace_of(mesh: Mesh, trace_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{mesh.config.dashboard_url}api/v1/traces/{trace_id}", timeout=10,
                         trust_env=False)
    return response.json() if response.status_code == 200 else None


def test_the_heatmap_counts_every_request_and_the_delayed_one_has_its_exemplar(mesh: Mesh) -> None:
    before = settled(lambda: edge_requests(mesh, "frontend", "catalog"), quiet=2.0)
    fast = [sampled_get(mesh, "/") for _ in range(20)]
    slow_status, slow_trace = sampled_get(mesh, "/product/42")
    assert [status for status, _ in fast] == [200] * 20 and slow_status == 200

    wait_until(lambda: edge_requests(mesh, "frontend", "catalog") >= before + 21, timeout=20,
               what="the 21 calls on frontend -> catalog")
    counted, in_heatmap = settled(lambda: (edge_requests(mesh, "frontend", "catalog"),
                                           heatmap_requests(mesh, "frontend", "catalog")))
    assert counted == before + 21
    assert in_heatmap == counted

    def slow_exemplar() -> tuple[dict[str, Any], dict[str, Any]] | None:
        heatmap = api(mesh, "heatmap", source="frontend", target="catalog", window=300, step=10)
        found = [x for x in heatmap["exemplars"] if x["trace_id"] == slow_trace]
        return (heatmap, found[0]) if found else None

    heatmap, exemplar = wait_until(slow_exemplar, timeout=20, what="the delayed call's exemplar")
    rows = heatmap["buckets_ms"] + [heatmap["top_ms"]]
    low, high = rows[exemplar["bucket"]], rows[exemplar["bucket"] + 1]
    assert low <= exemplar["value_ms"] < high
    assert SLOW_MS <= exemplar["value_ms"] < SLOW_MS * 1.5, exemplar
    column = heatmap["columns"][exemplar["column"]]
    assert column["counts"][exemplar["bucket"]] >= 1
    # Counted when the collector received it: up to an export interval (1 s) and a flush
    # after the request ended, so maybe in the column after the one its end time falls in.
    assert column["start"] - 5 <= exemplar["time"] < column["start"] + 10

    trace = wait_until(lambda: trace_of(mesh, slow_trace), timeout=20, what="the slow trace stored")
    client = next(s for s in trace["spans"] if s["service"] == "frontend" and s["kind"] == "client"
                  and s["attributes"].get("destination.service") == "catalog")
    assert client["span_id"] == exemplar["span_id"]
    assert client["duration_ms"] >= SLOW_MS
    assert any(e["name"].endswith("fault_injected") for e in client["events"]), client["events"]


def test_a_trace_through_three_services_nests_its_spans_and_shows_the_retry(mesh: Mesh) -> None:
    answers = [sampled_get(mesh, "/") for _ in range(8)]
    assert [status for status, _ in answers] == [200] * 8

    def retried_trace() -> dict[str, Any] | None:
        for _, trace_id in answers:
            trace = trace_of(mesh, trace_id)
            if trace and {"frontend", "catalog", "inventory"} <= {s["service"] for s in trace["spans"]} \
                    and any(e["name"].endswith("retry") for s in trace["spans"] for e in s["events"]):
                return trace
        return None

    # Round robin over a good and a bad inventory: about every other call is retried.
    trace = wait_until(retried_trace, timeout=20, what="a stored trace with a retried call")
    spans = {s["span_id"]: s for s in trace["spans"]}
    by_parent = {s["parent_span_id"]: s for s in trace["spans"]}
    root = next(s for s in trace["spans"] if s["depth"] == 0)  # its parent: the test's client
    assert (root["service"], root["kind"], root["depth"]) == ("frontend", "server", 0)
    chain = [root]
    while chain[-1]["span_id"] in by_parent and len(chain) < 10:
        chain.append(by_parent[chain[-1]["span_id"]])
    assert [(s["service"], s["kind"]) for s in chain[:5]] == [
        ("frontend", "server"), ("frontend", "client"), ("catalog", "server"),
        ("catalog", "client"), ("inventory", "server")]
    assert [s["depth"] for s in chain[:5]] == [0, 1, 2, 3, 4]
    retrying = next(s for s in trace["spans"] if any(e["name"].endswith("retry") for e in s["events"]))
    assert (retrying["service"], retrying["kind"]) == ("catalog", "client")
    assert retrying["attributes"].get("destination.service") == "inventory"
    # The failed first try reached the bad instance: its server span answered 503.
    inventory = [s for s in trace["spans"] if s["service"] == "inventory"]
    assert len(inventory) == 2 and {s["parent_span_id"] for s in inventory} == {retrying["span_id"]}
    assert sorted(s["attributes"].get("http.response.status_code") for s in inventory) == [200, 503]
    assert [s for s in trace["spans"] if s["parent_missing"]] == [root]
    assert all(s["parent_span_id"] in spans for s in trace["spans"] if s is not root)

    # And the search finds it by its edge and its services.
    found = api(mesh, "traces", source="catalog", target="inventory", limit=100)
    assert trace["trace_id"] in {t["trace_id"] for t in found["traces"]}
