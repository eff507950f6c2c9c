from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from collector.graphwriter import GraphWriter
from proxies.telemetry import histogram
from tests.fuzzing import examples, outcome

pytestmark = pytest.mark.django_db


def write(redis_client: redis.Redis, writer: GraphWriter) -> None:
    pipe = redis_client.pipeline(transaction=False)
    GraphWriter.queue_writes(pipe, writer.take())
    pipe.execute()


@pytest.fixture
def reader(meshui_settings: Any) -> Client:
    user = User.objects.create_user("reader", password="pw")
    client = Client()
    client.force_login(user)
    return client


def test_the_graph_endpoint_returns_the_graph_from_redis_exactly(
    reader: Client, redis_client: redis.Redis
) -> None:
    now = time.time()
    ten_ms = histogram.bucket_index(10.0)
    writer = GraphWriter(clock=lambda: now - 1)
    writer.add_edge("unknown", "frontend", 40, 2, {ten_ms: 40}, version="v1")
    writer.add_edge("unknown", "frontend", 20, 1, {ten_ms: 20}, version="v2")
    writer.add_node("frontend", "v1", 40, 2, {ten_ms: 40})
    writer.add_node("frontend", "v2", 20, 1, {ten_ms: 20})
    write(redis_client, writer)

    response = reader.get("/api/v1/graph", {"window": "30"})

    assert response.status_code == 200
    body = response.json()
    p = {q: round(histogram.quantile({ten_ms: 1}, q), 3) for q in (0.5, 0.95, 0.99)}
    assert abs(body["generated_at"] - now) < 5
    assert body == {
        "window": 30,
        "generated_at": body["generated_at"],
        "nodes": [
            {
                "id": "frontend",
                "service": "frontend",
                "versions": ["v1", "v2"],
                "requests": 60,
                "errors": 3,
                "rps": 2.0,
                "error_rate": 0.05,
                "p50_ms": p[0.5],
                "p95_ms": p[0.95],
                "p99_ms": p[0.99],
            },
            {
                "id": "unknown",
                "service": "unknown",
                "versions": [],
                "requests": 0,
                "errors": 0,
                "rps": 0.0,
                "error_rate": 0.0,
                "p50_ms": None,
                "p95_ms": None,
                "p99_ms": None,
            },
        ],
        "edges": [
            {
                "source": "unknown",
                "target": "frontend",
                "requests": 60,
                "errors": 3,
                "rps": 2.0,
                "error_rate": 0.05,
                "p50_ms": p[0.5],
                "p95_ms": p[0.95],
                "p99_ms": p[0.99],
                "server_requests": 0,
                "server_p50_ms": None,
                "server_p99_ms": None,
                "network_p50_ms": None,
                "network_p99_ms": None,
                "events": {
                    "retries": 0,
                    "ejections": 0,
                    "overflows": 0,
                    "timeouts": 0,
                    "faults": 0,
                    "rate_limited": 0,
                    "retry_budget_exhausted": 0,
                    "mtls": 0,
                    "denied": 0,
                    "audit_denied": 0,
                },
                "by_version": {
                    "v1": {"requests": 40, "errors": 2, "rps": 1.333, "share": 0.6667,
                           "p50_ms": p[0.5], "p95_ms": p[0.95], "p99_ms": p[0.99]},
                    "v2": {"requests": 20, "errors": 1, "rps": 0.667, "share": 0.3333,
                           "p50_ms": p[0.5], "p95_ms": p[0.95], "p99_ms": p[0.99]},
                },
            },
        ],
        "hidden": {"nodes": 0, "edges": 0},
    }


def test_the_graph_window_defaults_to_sixty_seconds(reader: Client) -> None:
    assert reader.get("/api/v1/graph").json()["window"] == 60


@pytest.mark.parametrize("window", ["0", "3601", "-5", "abc", "1.5"])
def test_a_bad_window_is_a_400_naming_the_parameter(reader: Client, window: str) -> None:
    response = reader.get("/api/v1/graph", {"window": window})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_parameter"
    assert body["parameter"] == "window"
    assert "window" in body["detail"]


@pytest.mark.parametrize(
    "path", ["/api/v1/graph", "/api/v1/services", "/api/v1/instances", "/api/v1/openapi.json"]
)
def test_reading_the_api_needs_a_login_unless_public_read(meshui_settings: Any, path: str) -> None:
    anonymous = Client()
    meshui_settings.MESHUI_PUBLIC_READ = False
    response = anonymous.get(path)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    meshui_settings.MESHUI_PUBLIC_READ = True
    assert anonymous.get(path).status_code == 200


def test_the_graph_page_redirects_to_login_unless_public_read(meshui_settings: Any) -> None:
    anonymous = Client()
    response = anonymous.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/")
    meshui_settings.MESHUI_PUBLIC_READ = True
    page = anonymous.get("/")
    assert page.status_code == 200
    assert b'id="graph"' in page.content
    assert b"/static/vendor/plotly.min.js" in page.content


def test_the_login_page_renders(meshui_settings: Any) -> None:
    response = Client().get("/accounts/login/")
    assert response.status_code == 200
    assert b"Log in to meshui" in response.content


def test_a_post_without_login_is_refused_even_with_public_read(meshui_settings: Any) -> None:
    meshui_settings.MESHUI_PUBLIC_READ = True
    response = Client().post("/api/v1/graph")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_a_session_post_without_csrf_token_is_refused_as_json(meshui_settings: Any) -> None:
    user = User.objects.create_user("writer", password="pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/api/v1/graph")
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"


def test_a_logged_in_post_to_a_read_only_endpoint_is_405(reader: Client) -> None:
    response = reader.post("/api/v1/graph")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_the_plotly_bundle_is_served_locally(meshui_settings: Any) -> None:
    response = Client().get("/static/vendor/plotly.min.js")
    assert response.status_code == 200
    assert b"plotly" in b"".join(response.streaming_content)[:2000].lower()


WINDOWS = st.one_of(
    st.integers(min_value=-5, max_value=3605).map(str),
    st.sampled_from(["", " 60", "60 ", "1e3", "0x10", "٣", "60.0", "-0", "+60", "9" * 40,
                     "\x00", "NaN", "inf"]),
    st.text(max_size=12),
)


@pytest.mark.fuzz
@examples(cost=2)
@given(window=WINDOWS)
def test_fuzz_the_graph_window_is_200_or_a_400_naming_it(reader: Client, window: str) -> None:
    response = reader.get("/api/v1/graph", {"window": window})
    outcome("api.graph.window", response.status_code)
    assert response.status_code in (200, 400), (window, response.content)
    if response.status_code == 400:
        assert response.json()["parameter"] == "window"
    else:
        assert 1 <= response.json()["window"] <= 3600


def test_the_graph_shows_the_busiest_nodes_up_to_the_setting_and_counts_the_rest(
    meshui_settings: Any, redis_url: str, reader: Client
) -> None:
    from tests.meshui.sample_graph import EDGES, write_sample_graph

    write_sample_graph(redis_url, seconds=5)
    services = {name for edge in EDGES for name in edge[:2]}
    meshui_settings.MESHUI_GRAPH_MAX_NODES = 4

    graph = reader.get("/api/v1/graph?window=60").json()

    kept = {node["id"] for node in graph["nodes"]}
    assert len(kept) == 4
    assert graph["hidden"]["nodes"] == len(services) - 4
    assert all(edge["source"] in kept and edge["target"] in kept for edge in graph["edges"])
    assert graph["hidden"]["edges"] == len(EDGES) - len(graph["edges"])


def test_the_graph_at_the_instance_level_lists_each_nodes_instances_and_the_network_time(
    reader: Client, redis_client: redis.Redis
) -> None:
    now = time.time()
    writer = GraphWriter(clock=lambda: now - 1)
    client_side, server_side = histogram.bucket_index(12.0), histogram.bucket_index(2.0)
    writer.add_edge("frontend", "catalog", 30, 0, {client_side: 30}, version="v1")
    writer.add_edge_served("frontend", "catalog", 30, 0, {server_side: 30})
    writer.add_node("catalog", "v1", 20, 0, {server_side: 20}, instance="catalog-1")
    writer.add_node("catalog", "v1", 10, 0, {server_side: 10}, instance="catalog-2")
    write(redis_client, writer)

    flat = reader.get("/api/v1/graph", {"window": 30}).json()
    assert all("instances" not in node for node in flat["nodes"])
    (edge,) = flat["edges"]
    assert edge["server_requests"] == 30 and edge["server_p50_ms"] < edge["p50_ms"]
    assert edge["network_p50_ms"] == pytest.approx(edge["p50_ms"] - edge["server_p50_ms"], abs=1e-3)

    graph = reader.get("/api/v1/graph", {"window": 30, "level": "instance"}).json()
    catalog = next(node for node in graph["nodes"] if node["id"] == "catalog")
    assert [(i["instance"], i["requests"]) for i in catalog["instances"]] == [
        ("catalog-1", 20), ("catalog-2", 10)]
    assert reader.get("/api/v1/graph", {"level": "pod"}).status_code == 400


def test_the_heatmap_of_an_edge_adds_up_to_its_requests_in_the_graph(
    reader: Client, redis_client: redis.Redis
) -> None:
    now = time.time()
    writer = GraphWriter(clock=lambda: now - 1)
    writer.add_edge("frontend", "catalog", 30, 0, {histogram.bucket_index(4.0): 30}, version="v1")
    writer.add_edge("frontend", "catalog", 2, 2, {histogram.bucket_index(850.0): 2},
                    version="v2")
    writer.add_node("catalog", "v1", 30, 0, {histogram.bucket_index(4.0): 30},
                    instance="catalog-1")
    writer.add_node("catalog", "v2", 2, 2, {histogram.bucket_index(850.0): 2},
                    instance="catalog-2")
    write(redis_client, writer)
    graph = reader.get("/api/v1/graph", {"window": 60}).json()
    (edge,) = [e for e in graph["edges"] if e["target"] == "catalog"]

    answer = reader.get("/api/v1/heatmap", {"source": "frontend", "target": "catalog",
                                            "window": 60, "step": 10})
    assert answer.status_code == 200, answer.content
    heatmap = answer.json()
    assert heatmap["window"] == 60 and heatmap["step"] == 10
    assert sum(sum(c["counts"]) for c in heatmap["columns"]) == edge["requests"] == 32
    assert all(c["start"] % 10 == 0 for c in heatmap["columns"])
    slow = reader.get("/api/v1/heatmap", {"source": "frontend", "target": "catalog",
                                          "version": "v2"}).json()
    (busy,) = [c for c in slow["columns"] if c["requests"]]
    assert busy["errors"] == 2 and busy["p50_ms"] > 500
    served = reader.get("/api/v1/heatmap", {"service": "catalog"}).json()
    assert sum(c["requests"] for c in served["columns"]) == 32
    for query, requests in (({"version": "v2"}, 2), ({"instance": "catalog-1"}, 30)):
        part = reader.get("/api/v1/heatmap", {"service": "catalog", **query}).json()
        assert sum(c["requests"] for c in part["columns"]) == requests


@pytest.mark.parametrize(("query", "detail"), [
    ({}, "give source and target"),
    ({"source": "frontend"}, "give source and target"),
    ({"service": "catalog", "source": "frontend"}, "not both"),
    ({"service": "catalog", "version": "v1", "instance": "catalog-1"}, "not both"),
    ({"source": "frontend", "target": "catalog", "instance": "catalog-1"}, "not recorded"),
    ({"service": "catalog", "instance": "catalog 1"}, "instance must be"),
    ({"service": "catalog", "window": 10, "step": 30}, "must not be longer than the window"),
    ({"service": "catalog", "step": 0}, "step"),
    ({"source": "frontend\x1fcatalog", "target": "x"}, "source must be"),
    ({"source": "frontend", "target": "catalog", "version": "v 1"}, "version must be"),
])
def test_a_heatmap_query_that_names_no_series_is_a_400_that_says_why(
    reader: Client, query: dict[str, Any], detail: str
) -> None:
    answer = reader.get("/api/v1/heatmap", query)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_parameter" and detail in answer.json()["detail"]


def test_the_series_of_an_edge_add_up_to_its_requests_and_show_the_retried_tries(
    reader: Client, redis_client: redis.Redis
) -> None:
    from meshui.registry.models import Instance, Service

    now = time.time()
    writer = GraphWriter(clock=lambda: now - 1)
    writer.add_edge("frontend", "catalog", 40, 2, {histogram.bucket_index(6.0): 40}, version="v1")
    writer.add_edge_counter("frontend", "catalog", "retries", 8, "frontend", "frontend-a1")
    writer.add_node("catalog", "v1", 48, 2, {histogram.bucket_index(5.0): 48}, instance="catalog-1")
    write(redis_client, writer)
    graph = reader.get("/api/v1/graph", {"window": 60}).json()
    (edge,) = graph["edges"]

    answer = reader.get("/api/v1/series", {"source": "frontend", "target": "catalog",
                                           "window": 60, "step": 10,
                                           "metric": "rps,actual_rps,actual_success_rate,retries"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["window"] == 60 and body["step"] == 10
    assert len(body["times"]) in (6, 7)  # 7 unless the window starts on a multiple of 10
    lines = {line["metric"]: line for line in body["series"]}
    assert list(lines) == ["rps", "actual_rps", "actual_success_rate", "retries"]
    assert sum(body["seconds"]) == 60
    counts = lambda values: sum(v * s for v, s in zip(values, body["seconds"], strict=True))  # noqa: E731
    # Rates are rounded to 6 places: rate * seconds is the count within a rounding.
    assert counts(lines["rps"]["values"]) == pytest.approx(edge["requests"], abs=1e-3) == 40
    assert counts(lines["actual_rps"]["values"]) == pytest.approx(48, abs=1e-3)
    assert [v for v in lines["actual_success_rate"]["values"] if v is not None] == [0.7917]
    assert lines["retries"]["unit"] == "events/s"

    # The golden metrics by default, over 5 minutes at 5 s; an instance found by its proxy id.
    Instance.objects.create(proxy_id="catalog-1", service=Service.objects.create(name="catalog"),
                            address="127.0.0.1:1")
    answer = reader.get("/api/v1/series", {"instance": "catalog-1", "window": 300})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["step"] == 5 and len(body["times"]) in (60, 61) and sum(body["seconds"]) == 300
    rps = next(line for line in body["series"] if line["metric"] == "rps")
    assert sum(v * s for v, s in zip(rps["values"], body["seconds"], strict=True)) == pytest.approx(
        48, abs=1e-3)


@pytest.mark.parametrize(("query", "detail"), [
    ({"service": "catalog", "metric": "rps,p42"}, "unknown metric 'p42'"),
    ({"instance": "catalog-9"}, "no instance 'catalog-9' is registered"),
    ({"instance": "catalog 9"}, "instance must be"),
    ({}, "give source and target"),
    ({"service": "catalog", "window": 60, "step": 61}, "step"),
])
def test_a_series_query_that_names_nothing_known_is_a_400_that_says_why(
    reader: Client, query: dict[str, Any], detail: str
) -> None:
    answer = reader.get("/api/v1/series", query)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_parameter" and detail in answer.json()["detail"], (
        answer.json())
