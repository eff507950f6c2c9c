"""The whole mesh on loopback: real sidecars, collector, dashboard API, Redis, database."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
import websockets
import websockets.exceptions
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.e2e.conftest import RunningMesh

PRODUCT_EDGES = [("unknown", "frontend"), ("frontend", "catalog"), ("frontend", "reviews"),
                 ("catalog", "inventory")]


def send(mesh: RunningMesh, count: int, method: str = "GET", path: str = "/product/42") -> list[int]:
    with httpx.Client(timeout=10, trust_env=False) as client:
        return [client.request(method, mesh.frontend() + path, headers={"host": "frontend"}).status_code
                for _ in range(count)]


def test_counted_requests_appear_as_exact_edge_counts(demo_mesh: RunningMesh) -> None:
    before = demo_mesh.settled(lambda: {edge: demo_mesh.edge_count(*edge) for edge in PRODUCT_EDGES})

    statuses = send(demo_mesh, 40)

    assert statuses == [200] * 40
    target = {edge: before[edge] + 40 for edge in PRODUCT_EDGES}
    demo_mesh.wait_for(
        lambda: all(demo_mesh.edge_count(*edge) >= n for edge, n in target.items()),
        what="every edge of the product page to count 40 more requests")
    assert {edge: demo_mesh.edge_count(*edge) for edge in PRODUCT_EDGES} == target


def test_an_edges_heatmap_adds_up_to_its_request_count_in_the_graph(demo_mesh: RunningMesh) -> None:
    assert send(demo_mesh, 10) == [200] * 10

    def heatmap_total() -> int:
        response = httpx.get(f"{demo_mesh.api}/api/v1/heatmap", timeout=10, params={
            "source": "frontend", "target": "catalog", "window": 3600, "step": 60})
        response.raise_for_status()
        return sum(sum(column["counts"]) for column in response.json()["columns"])

    counted, in_heatmap = demo_mesh.settled(
        lambda: (demo_mesh.edge_count("frontend", "catalog"), heatmap_total()))
    assert in_heatmap == counted >= 10


def test_graph_nodes_carry_versions_and_latency(demo_mesh: RunningMesh) -> None:
    send(demo_mesh, 10)

    def catalog_node():
        nodes = {node["id"]: node for node in demo_mesh.graph(60)["nodes"]}
        node = nodes.get("catalog")
        return node if node and node["versions"] == ["v1", "v2"] else None

    catalog = demo_mesh.wait_for(catalog_node, what="catalog served by both versions")
    assert catalog["rps"] > 0
    assert 0 < catalog["p50_ms"] <= catalog["p95_ms"] <= catalog["p99_ms"]
    edge = next(e for e in demo_mesh.graph(60)["edges"]
                if (e["source"], e["target"]) == ("frontend", "catalog"))
    assert set(edge) >= {"source", "target", "requests", "errors", "rps", "error_rate",
                         "p50_ms", "p95_ms", "p99_ms"}


def test_failing_payments_show_as_edge_errors(demo_mesh: RunningMesh) -> None:
    before = demo_mesh.settled(lambda: demo_mesh.edge_count("checkout", "payments"))

    statuses = send(demo_mesh, 5, method="POST", path="/checkout")

    assert statuses == [200] * 5  # the fixture turns payments' failures off
    demo_mesh.wait_for(lambda: demo_mesh.edge_count("checkout", "payments") >= before + 5,
                       what="checkout -> payments to count 5 more")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_an_sdk_app_without_a_sidecar_appears_in_the_graph(demo_mesh: RunningMesh, protocol: str) -> None:
    config = demo_mesh.config
    web_name, api_name = f"sdk-{protocol}-web", f"sdk-{protocol}-api"
    providers = {}
    for service in (web_name, api_name):
        grpc_endpoint = f"{config.host}:{config.collector_grpc_port}"
        exporter = (OTLPSpanExporter(endpoint=f"{config.collector_url}/v1/traces") if protocol == "http"
                    else GrpcSpanExporter(endpoint=grpc_endpoint, insecure=True))
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        providers[service] = provider
    web = providers[web_name].get_tracer("e2e")
    api = providers[api_name].get_tracer("e2e")
    for _ in range(25):
        with web.start_as_current_span("GET /api/items", kind=trace.SpanKind.CLIENT):
            with api.start_as_current_span("GET /items", kind=trace.SpanKind.SERVER):
                pass
    for provider in providers.values():
        assert provider.force_flush(10_000)
        provider.shutdown()

    demo_mesh.wait_for(lambda: demo_mesh.edge_count(web_name, api_name) >= 25,
                       what=f"the SDK edge {web_name} -> {api_name}")
    assert demo_mesh.edge_count(web_name, api_name) == 25
    nodes = {node["id"] for node in demo_mesh.graph()["nodes"]}
    assert {web_name, api_name} <= nodes

    # Its edge has a heatmap holding every call, with exemplars that open their traces.
    heatmap = httpx.get(f"{demo_mesh.api}/api/v1/heatmap", timeout=10, params={
        "source": web_name, "target": api_name, "window": 600, "step": 10}).json()
    assert sum(sum(column["counts"]) for column in heatmap["columns"]) == 25
    assert heatmap["exemplars"]
    # Its traces can be searched and opened: both halves of each call, nested.
    def all_found() -> dict | None:
        found = httpx.get(f"{demo_mesh.api}/api/v1/traces", timeout=10,
                          params={"source": web_name, "target": api_name, "limit": 100}).json()
        return found if len(found["traces"]) == 25 else None

    found = demo_mesh.wait_for(all_found, what="the 25 SDK traces stored and found by their edge")
    assert {x["trace_id"] for x in heatmap["exemplars"]} <= {t["trace_id"] for t in found["traces"]}
    opened = httpx.get(f"{demo_mesh.api}/api/v1/traces/{found['traces'][0]['trace_id']}",
                       timeout=10).json()
    client, server = opened["spans"]
    assert (client["service"], client["kind"], client["depth"]) == (web_name, "client", 0)
    assert (server["service"], server["kind"], server["depth"]) == (api_name, "server", 1)
    assert server["parent_span_id"] == client["span_id"]


def test_an_unknown_service_gets_a_clear_error_from_the_sidecar(demo_mesh: RunningMesh) -> None:
    outbound = f"http://{demo_mesh.config.host}:{demo_mesh.config.ports(0).outbound}"

    response = httpx.get(outbound + "/x", headers={"host": "no-such-service"}, timeout=5,
                         trust_env=False)

    assert response.status_code == 502
    assert response.headers["x-meshui-error"] == "unknown-service"
    assert "no-such-service" in response.text


def test_malformed_otlp_gets_400_and_the_collector_keeps_serving(demo_mesh: RunningMesh) -> None:
    url = f"{demo_mesh.config.collector_url}/v1/traces"

    bad = httpx.post(url, content=b"\x0a\xff\xff\xff", timeout=5,
                     headers={"content-type": "application/x-protobuf"})
    good = httpx.post(url, content=b"", timeout=5, headers={"content-type": "application/x-protobuf"})

    assert bad.status_code == 400
    assert good.status_code == 200


async def test_the_control_channel_refuses_a_wrong_token(demo_mesh: RunningMesh) -> None:
    url = f"ws://{demo_mesh.config.host}:{demo_mesh.config.meshui_port}/api/v1/control"

    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(url, additional_headers={"Authorization": "Bearer wrong"}):
            pass

    assert refused.value.response.status_code == 403


def _pid_of(mesh: RunningMesh, argument: str) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if argument.encode() in cmdline and mesh.token.encode() in environ:
                return int(entry.name)
    raise LookupError(argument)


def test_a_dead_instance_is_skipped_and_then_removed(demo_mesh: RunningMesh) -> None:
    """Runs last: it kills catalog v2's sidecar for good."""
    victim = _pid_of(demo_mesh, "catalog-v2-2")
    os.kill(victim, signal.SIGKILL)

    statuses = send(demo_mesh, 20, path="/")

    # The frontend's sidecar may see one connect failure; it retries elsewhere or fails fast
    # with 503, and from then on the dead instance gets nothing.
    assert statuses.count(200) >= 19, statuses
    assert set(statuses) <= {200, 503, 502}

    def victim_row() -> dict:
        rows = httpx.get(f"{demo_mesh.api}/api/v1/instances", timeout=5).json()["instances"]
        [row] = [row for row in rows if row["proxy_id"] == "catalog-v2-2"]  # still listed
        return row

    demo_mesh.wait_for(lambda: not victim_row()["connected"], what="the control plane to drop catalog v2")
    demo_mesh.wait_for(lambda: "catalog-v2-2" not in catalog_instances(demo_mesh),
                       what="the frontend's sidecar to drop catalog v2 from its endpoints")
    assert catalog_instances(demo_mesh) == {"catalog-v1-1"}
    assert send(demo_mesh, 10, path="/") == [200] * 10


def catalog_instances(mesh: RunningMesh) -> set[str]:
    """The catalog instances the frontend's sidecar balances over, from its admin port."""
    admin = f"http://{mesh.config.host}:{mesh.config.ports(0).admin}/endpoints"
    view = httpx.get(admin, timeout=5, trust_env=False).json()["destinations"]
    return {endpoint["instance"] for endpoint in view["catalog"]["endpoints"]}
