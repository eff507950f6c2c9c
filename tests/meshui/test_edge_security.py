"""The graph's padlocks and denial labels (meshui.dashboard.edge_security, through the figure)."""

from __future__ import annotations

from typing import Any

import pytest

from meshui.dashboard.edge_security import mtls_share, security_lines, share_text
from meshui.dashboard.figure import build_figure, page_payload
from meshui.dashboard.health import AMBER, RED
from tests.meshui.test_figure import plotly_reading, stats


def graph(*edges: dict[str, Any]) -> dict[str, Any]:
    names = sorted({e["source"] for e in edges} | {e["target"] for e in edges})
    return {"window": 60, "generated_at": 1.0,
            "nodes": [{"id": n, "service": n, "versions": ["v1"], **stats(100, 0)} for n in names],
            "edges": list(edges)}


def edge(source: str, target: str, requests: int = 100, **events: int) -> dict[str, Any]:
    return {"source": source, "target": target, **stats(requests, 0), "events": events}


def named(figure: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    items = figure["layout"].get("annotations", []) + figure["layout"].get("shapes", [])
    return [a for a in items if str(a.get("name", "")).startswith(prefix)]


def test_an_edge_all_over_mtls_gets_a_padlock_without_a_share() -> None:
    figure = build_figure(graph(edge("frontend", "catalog", mtls=100)))
    shapes = [s for s in figure["layout"]["shapes"] if s["name"] == "padlock-0"]
    assert [s["type"] for s in shapes] == ["rect", "path", "path", "path"]  # plate, body, shackle, keyhole
    # On the line, a little before the diamond (the midpoint), towards the caller.
    diamond = figure["data"][0]
    ((x, y),) = {(s["xanchor"], s["yanchor"]) for s in shapes}
    (arrow,) = [a for a in figure["layout"]["annotations"] if a["name"] == "edge-0"]
    assert arrow["ax"] < x < diamond["x"][0] and diamond["x"][0] - x == pytest.approx(0.15)
    assert y == pytest.approx(arrow["ay"] + (x - arrow["ax"]) * (arrow["y"] - arrow["ay"])
                              / (arrow["x"] - arrow["ax"]))
    assert all(s["xsizemode"] == s["ysizemode"] == "pixel" for s in shapes)  # never stretched
    (lock,) = named(figure, "mtls-0")
    assert lock["text"] == " "  # all of it: no number
    assert "mTLS: 100% of requests" in lock["hovertext"]


def test_a_mixed_edge_shows_its_share_beside_the_padlock() -> None:
    figure = build_figure(graph(edge("frontend", "catalog", requests=200, mtls=124)))
    (lock,) = named(figure, "mtls-0")
    assert lock["text"] == "62%"
    assert lock["hovertext"].split("<br>") == [
        "mTLS: 62% of requests",
        "spiffe://meshui.local/service/frontend → spiffe://meshui.local/service/catalog"]
    assert named(figure, "padlock-0")


def test_the_share_never_reads_0_or_100_while_mixed_and_is_at_most_1() -> None:
    assert share_text(0.004) == "<1%"
    assert share_text(0.996) == ">99%"
    assert share_text(0.5) == "50%"
    assert mtls_share(edge("a", "b", requests=10, mtls=12)) == 1.0  # counted by another side
    assert mtls_share(edge("a", "b", requests=0, mtls=3)) is None


def test_no_padlock_for_callers_outside_the_mesh_or_plaintext_edges() -> None:
    figure = build_figure(graph(edge("unknown", "frontend", mtls=50), edge("frontend", "catalog")))
    assert named(figure, "padlock-") == [] and named(figure, "mtls-") == []
    hovers = figure["data"][0]["text"]
    assert "plaintext: callers from outside the mesh (no identity)" in hovers[0]
    assert "spiffe://" not in hovers[0]
    assert "mTLS: none seen (plaintext, or no sidecar on catalog counts it)" in hovers[1]


def test_the_edge_hover_names_both_identities_in_the_trust_domain() -> None:
    figure = build_figure(graph(edge("checkout", "payments", mtls=100)), trust_domain="prod.example")
    lines = figure["data"][0]["text"][0].split("<br>")
    assert "mTLS: 100% of requests" in lines
    assert ("spiffe://prod.example/service/checkout → spiffe://prod.example/service/payments"
            in lines)
    assert "spiffe://prod.example/" in page_payload(
        graph(edge("a", "b", mtls=1)), trust_domain="prod.example")["figure"]["data"][0]["text"][0]


def test_denied_and_would_be_denied_are_red_and_amber_labels_under_the_padlock() -> None:
    figure = build_figure(graph(edge("frontend", "payments", mtls=100, denied=12, audit_denied=1234)))
    (denied,) = named(figure, "denied-0")
    (audit,) = named(figure, "audit-denied-0")
    assert (denied["text"], denied["font"]["color"], denied["bordercolor"]) == ("12 denied", RED, RED)
    assert (audit["text"], audit["font"]["color"]) == ("1,234 would be denied", AMBER)
    # Beside the diamond on the callee's side (the padlock is on the caller's), stacked down.
    assert (denied["x"], denied["y"]) == (figure["data"][0]["x"][0], figure["data"][0]["y"][0])
    assert (denied["xanchor"], denied["xshift"] > 0) == ("left", True)
    assert 0 == denied["yshift"] > audit["yshift"]
    assert "refused with 403" in denied["hovertext"]
    assert "AUDIT rules would deny them" in audit["hovertext"]


def test_a_self_call_s_padlock_is_on_its_marker_and_quiet_edges_get_no_label() -> None:
    figure = build_figure(graph(edge("a", "a", mtls=100)))
    (plate, *_) = named(figure, "padlock-0")
    assert (plate["xanchor"], plate["yanchor"]) == (figure["data"][0]["x"][0], figure["data"][0]["y"][0])
    assert named(build_figure(graph(edge("a", "b", denied=0, audit_denied=0))), "denied") == []


def test_every_edge_s_parts_are_named_by_its_point_in_the_edges_trace() -> None:
    figure = build_figure(graph(edge("a", "b"), edge("b", "c", mtls=100, denied=1)))
    index = figure["data"][0]["customdata"].index("b->c")
    assert {a["name"] for a in named(figure, "")} >= {f"mtls-{index}", f"denied-{index}"}
    assert named(figure, f"padlock-{1 - index}") == []


def test_hostile_names_are_plain_text_in_the_identities_and_labels() -> None:
    hostile = "<img src=x onerror=alert(1)>$x$"
    figure = build_figure(graph(edge(hostile, "catalog", requests=10, mtls=5, denied=1)))
    for annotation in named(figure, ""):
        for key in ("text", "hovertext"):
            if key in annotation:
                tags, runs = plotly_reading(annotation[key])
                assert tags <= {"<br>"}, annotation[key]
                assert "$" not in annotation[key]
    (lock,) = named(figure, "mtls-0")
    _, runs = plotly_reading(lock["hovertext"])
    assert runs[-1] == f"spiffe://meshui.local/service/{hostile} → spiffe://meshui.local/service/catalog"
    assert security_lines(edge("a", "<b>", mtls=0), "meshui.local")[0].endswith("&#60;b&#62; counts it)")


def test_on_an_edge_drawn_right_to_left_the_labels_go_left_of_the_diamond() -> None:
    figure = build_figure(graph(edge("b", "a", denied=1)), positions={"a": (0.0, 0.0), "b": (1.0, 0.0)})
    (denied,) = named(figure, "denied-0")
    assert (denied["xanchor"], denied["xshift"] < 0) == ("right", True)


def test_labels_move_to_the_caller_s_side_when_a_node_is_in_their_way_and_the_padlock_follows() -> None:
    # c sits just right of the a -> b edge's midpoint (0.5, 0), where the labels would go.
    positions = {"a": (0.0, 0.0), "b": (1.0, 0.0), "c": (0.85, 0.05)}
    figure = build_figure(graph(edge("a", "b", mtls=100, denied=1), edge("c", "c")),
                          positions=positions)
    index = figure["data"][0]["customdata"].index("a->b")
    (denied,) = named(figure, f"denied-{index}")
    assert (denied["xanchor"], denied["xshift"] < 0) == ("right", True)
    (plate, *_) = named(figure, f"padlock-{index}")
    assert plate["xanchor"] > 0.5  # on the callee's side now
    quiet = build_figure(graph(edge("a", "b", mtls=100, denied=1)),
                         positions={"a": (0.0, 0.0), "b": (1.0, 0.0)})
    assert named(quiet, "padlock-0")[0]["xanchor"] < 0.5
