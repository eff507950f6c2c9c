"""One vocabulary of edge events (proxies.telemetry.events): every event a sidecar counts is
one the collector maps, the graph carries, the API schema describes and the dashboard labels,
and no layer knows one that another does not."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from collector.graphstore import DEFAULT_WINDOW, build_graph
from collector.graphwriter import GraphWriter
from collector.otlp_metrics import decode_protobuf
from collector.sidecar_metrics import SidecarMetricsConnector
from collector.sidecar_points import SIDECAR_COUNTERS
from meshui.dashboard.figure import events_line
from meshui.dashboard.schemas import EdgeEvents, Graph
from proxies.dataplane.metrics import ProxyMetrics
from proxies.telemetry.counters import CounterKey
from proxies.telemetry.encode import MetricsEncoder, resource_proto
from proxies.telemetry.events import EDGE_EVENTS, EVENT_KEYS
from proxies.telemetry.model import Resource

DOCS = Path(__file__).resolve().parents[1] / "docs"
# A value for each parameter a ``ProxyMetrics.count_*`` method takes. A new count method
# with a new parameter fails here with a KeyError naming it: give it a value.
ARGUMENTS: dict[str, object] = {
    "source": "frontend", "destination": "catalog", "limit": "max_requests", "kind": "connect",
    "scope": "source", "outbound": True, "direction": "outbound", "reason": "bad-request",
    "address": "127.0.0.1:9", "rule": "no-admin",
}


def count_everything() -> dict[CounterKey, int]:
    """Call every ``count_*`` method of a sidecar's metrics once; the edge counts they made."""
    metrics = ProxyMetrics()
    methods = [m for name, m in inspect.getmembers(metrics, inspect.ismethod) if name.startswith("count_")]
    assert len(methods) >= len(EDGE_EVENTS)
    for method in methods:
        method(**{name: ARGUMENTS[name] for name in inspect.signature(method).parameters})
    return metrics.edges.take()


def test_every_counter_a_sidecar_exports_is_one_the_collector_maps_onto_the_edge() -> None:
    counts = count_everything()
    assert {metric for metric, *_ in counts} <= set(SIDECAR_COUNTERS)

    # The sidecar's own export bytes, through the collector's decoder, onto the graph.
    body = MetricsEncoder(resource_proto(Resource("frontend", "v1", "frontend-1"))).encode(
        [], 1, 2, list(counts.items()))
    batch = decode_protobuf(body)
    assert batch.rejected.count == 0, batch.rejected.message
    writer = GraphWriter(clock=lambda: 1000.0)
    SidecarMetricsConnector(writer, started_ns=0).consume(batch)
    graph = build_graph(writer.take().values(), DEFAULT_WINDOW, 1000.0)
    (edge,) = graph["edges"]
    assert (edge["source"], edge["target"]) == ("frontend", "catalog")
    # Every event was counted by some count_* method and arrived under its own key.
    assert list(edge["events"]) == list(EVENT_KEYS)
    assert all(edge["events"].values()), edge["events"]
    Graph.model_validate(graph)  # and the API's schema takes it as it is


def test_the_collector_the_graph_and_the_api_schema_know_the_same_events() -> None:
    assert sorted(SIDECAR_COUNTERS.values()) == sorted(EVENT_KEYS)
    assert list(EdgeEvents.model_fields) == list(EVENT_KEYS)
    assert len(set(EVENT_KEYS)) == len(EVENT_KEYS)
    assert len({event.metric for event in EDGE_EVENTS}) == len(EDGE_EVENTS)
    # A key the list does not hold never reaches the graph.
    writer = GraphWriter(clock=lambda: 1000.0)
    writer.add_edge_counter("a", "b", "made_up", 3)
    assert build_graph(writer.take().values(), DEFAULT_WINDOW, 1000.0)["edges"] == []


def test_the_dashboard_labels_every_event_and_no_other() -> None:
    line = events_line(dict.fromkeys(EVENT_KEYS, 1))
    assert line is not None
    assert line.split(" · ") == [f"1 {event.label}" for event in EDGE_EVENTS]
    assert len({event.label for event in EDGE_EVENTS}) == len(EDGE_EVENTS)
    assert events_line({"made_up": 3}) is None


def test_the_admin_port_has_a_family_for_every_event() -> None:
    text = ProxyMetrics().render()
    for event in EDGE_EVENTS:
        assert f"# HELP {event.prometheus} {event.description}\n" in text
        assert re.search(rf"^# TYPE {event.prometheus} counter$", text, re.M), event.prometheus


def test_the_docs_name_every_event_on_every_layer() -> None:
    telemetry, sidecar, collector, api = (
        (DOCS / name).read_text() for name in ("telemetry.md", "sidecar.md", "collector.md", "api.md"))
    for event in EDGE_EVENTS:
        assert f"`{event.metric}`" in telemetry, event.metric
        assert f"`{event.metric}`" in collector, event.metric
        assert f"`{event.prometheus}`" in sidecar, event.prometheus
        assert f"`{event.key}`" in api, event.key
