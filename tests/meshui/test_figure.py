from __future__ import annotations

from typing import Any

from meshui.dashboard.figure import AMBER, GREEN, GREY, RED, build_figure, health_color, summary


def stats(requests: int, errors: int, window: int = 60) -> dict[str, Any]:
    return {"requests": requests, "errors": errors, "rps": requests / window,
            "error_rate": errors / requests if requests else 0.0,
            "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0}


GRAPH = {
    "window": 60, "generated_at": 1.0,
    "nodes": [
        {"id": "frontend", "service": "frontend", "versions": ["v1"], **stats(600, 0)},
        {"id": "unknown", "service": "unknown", "versions": [], **stats(0, 0)},
    ],
    "edges": [{"source": "unknown", "target": "frontend", **stats(600, 12)}],
}


def test_edges_are_green_amber_red_or_grey_by_error_rate() -> None:
    assert health_color(1000, 0.0099) == GREEN
    assert health_color(1000, 0.01) == AMBER
    assert health_color(1000, 0.0499) == AMBER
    assert health_color(1000, 0.05) == RED
    assert health_color(0, 0.0) == GREY


def test_every_edge_is_an_arrow_with_a_hoverable_midpoint() -> None:
    figure = build_figure(GRAPH)
    (arrow,) = figure["layout"]["annotations"]
    assert (arrow["ax"], arrow["x"]) == (0.0, 1.0)
    assert arrow["arrowcolor"] == AMBER  # 2% errors
    edges_trace = figure["data"][0]
    assert edges_trace["customdata"] == ["unknown->frontend"]
    assert edges_trace["x"] == [0.5]
    hover = edges_trace["text"][0]
    assert "unknown → frontend" in hover
    assert "10.0/s · 2.00% errors" in hover
    assert "p50 1.00 ms · p95 2.00 ms · p99 3.00 ms" in hover
    assert "600 requests, 12 errors in 60 s" in hover


def test_every_service_is_a_labelled_node_with_its_versions() -> None:
    nodes = build_figure(GRAPH)["data"][1]
    assert nodes["customdata"] == ["frontend", "unknown"]
    assert "<b>frontend</b>" in nodes["text"][0] and "v1" in nodes["text"][0]
    assert "versions: v1" in nodes["hovertext"][0]


def test_the_summary_counts_requests_once_as_callers_saw_them() -> None:
    assert summary(GRAPH) == {"services": 2, "edges": 1, "rps": 10.0, "error_rate": 0.02,
                              "generated_at": 1.0}


def test_an_edge_hover_says_what_the_policy_did_and_nothing_when_it_did_nothing() -> None:
    from meshui.dashboard.figure import edge_hover

    base = {"source": "checkout", "target": "payments", "rps": 1.0, "error_rate": 0.0,
            "p50_ms": 5.0, "p95_ms": 9.0, "p99_ms": 12.0, "requests": 60, "errors": 0}
    quiet = edge_hover({**base, "events": {"retries": 0, "ejections": 0}}, 60)
    busy = edge_hover({**base, "events": {"retries": 7, "ejections": 1, "rate_limited": 0}}, 60)

    assert "retries" not in quiet
    assert busy.endswith("7 retries · 1 ejections")
