from __future__ import annotations

import html
import re
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshui.dashboard.figure import (
    LABEL_CHARS,
    MUTED,
    build_figure,
    clip,
    health_color,
    page_payload,
    plotly_text,
    summary,
)
from meshui.dashboard.health import AMBER, GREEN, GREY, RED
from tests.fuzzing import examples, outcome


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


def test_an_edge_s_arrows_are_named_by_its_point_in_the_edges_trace() -> None:
    # The graph page recolours an edge that alerts (static/dashboard/graph_alerts.js).
    (arrow,) = build_figure(GRAPH)["layout"]["annotations"]
    assert arrow["name"] == "edge-0"


def test_every_service_is_a_labelled_node_with_its_versions() -> None:
    nodes = build_figure(GRAPH)["data"][1]
    assert nodes["customdata"] == ["frontend", "unknown"]
    assert "<b>frontend</b>" in nodes["text"][0] and "v1" in nodes["text"][0]
    assert "versions: v1" in nodes["hovertext"][0]


def test_the_summary_counts_requests_once_as_callers_saw_them() -> None:
    assert summary(GRAPH) == {"services": 2, "edges": 1, "rps": 10.0, "error_rate": 0.02,
                              "generated_at": 1.0, "hidden": {"nodes": 0, "edges": 0}}


def test_the_summary_carries_what_the_node_cap_left_out() -> None:
    capped = {**GRAPH, "hidden": {"nodes": 140, "edges": 310}}
    assert summary(capped)["hidden"] == {"nodes": 140, "edges": 310}
    assert page_payload(capped)["graph"]["hidden"] == {"nodes": 140, "edges": 310}
    assert page_payload(GRAPH)["graph"]["hidden"] == {"nodes": 0, "edges": 0}


def test_an_edge_hover_says_what_the_policy_did_and_nothing_when_it_did_nothing() -> None:
    from meshui.dashboard.figure import edge_hover

    base = {"source": "checkout", "target": "payments", "rps": 1.0, "error_rate": 0.0,
            "p50_ms": 5.0, "p95_ms": 9.0, "p99_ms": 12.0, "requests": 60, "errors": 0}
    quiet = edge_hover({**base, "events": {"retries": 0, "ejections": 0}}, 60)
    busy = edge_hover({**base, "events": {"retries": 7, "ejections": 1, "rate_limited": 0}}, 60)

    assert "retries" not in quiet
    assert "7 retries · 1 ejections" in busy.split("<br>")


def test_an_edge_hover_shows_the_observed_split_and_nothing_without_one() -> None:
    from meshui.dashboard.figure import edge_hover

    base = {"source": "frontend", "target": "catalog", "rps": 1.0, "error_rate": 0.0,
            "p50_ms": 5.0, "p95_ms": 9.0, "p99_ms": 12.0, "requests": 60, "errors": 0,
            "events": {"retries": 2}}
    split = edge_hover({**base, "by_version": {"v1": {"share": 0.8}, "v2": {"share": 0.1833}}}, 60)
    assert split.split("<br>")[-3:-1] == ["split: v1 80.0% · v2 18.3%", "2 retries"]
    assert "split" not in edge_hover({**base, "by_version": {}}, 60)
    assert "split" not in edge_hover(base, 60)  # a graph from before by_version


# Names a hostile OTLP client can put in service.name / service.version.
HOSTILE = [
    "<a href='https://evil.example'>click</a>",
    '<span style="font-size:90px">big</span>',
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    "\"quoted\" & 'single'",
    "$\\frac{1}{2}$",
    "line\nbreak\r\nagain",
    "&lt;b&gt;entity&lt;/b&gt; &#60;i&#62;",
]
OUR_TAGS = {"<b>", "</b>", "<br>", f"<span style='font-size:11px;color:{MUTED}'>", "</span>"}
TAG = re.compile(r"<[^<>]*>")


def plotly_reading(text: str) -> tuple[set[str], list[str]]:
    """What Plotly makes of ``text``: the tags it interprets, and the text runs it shows.

    As plotly.js' svg_text_utils does: newlines become <br>, the string is split on tags,
    and entities are decoded inside the text runs only.
    """
    text = re.sub(r"\r\n?|\n", "<br>", text)
    return set(TAG.findall(text)), [html.unescape(run) for run in TAG.split(text)]


def hostile_graph(names: list[str]) -> dict[str, Any]:
    nodes = [{"id": n, "service": n, "versions": [n, "v1"], **stats(60, 1)} for n in names]
    edges = [{"source": a, "target": b, **stats(60, 1),
              "by_version": {a: {"share": 0.25}, "v1": {"share": 0.75}},
              "events": {"mtls": 30, "denied": 2, "audit_denied": 1}} for a, b in pairwise(names)]
    return {"window": 60, "generated_at": 1.0, "nodes": nodes, "edges": edges}


def every_text(figure: dict[str, Any]) -> list[str]:
    """Every label and hover of the traces and of the layout's annotations (padlocks,
    denial labels)."""
    return [t for trace in figure["data"] for key in ("text", "hovertext")
            for t in trace.get(key, [])] + [
        a[key] for a in figure["layout"]["annotations"] for key in ("text", "hovertext") if key in a]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_is_plain_text_in_every_label_and_hover(name: str) -> None:
    figure = build_figure(hostile_graph([name, "frontend"]))
    nodes, edges = figure["data"][1], figure["data"][0]

    for text in every_text(figure):
        tags, _ = plotly_reading(text)
        assert tags <= OUR_TAGS, text
        assert "$" not in text  # Plotly reads $...$ as LaTeX
    _, label = plotly_reading(nodes["text"][0])
    assert label[1] == clip(name) and label[4] == clip(f"{name} · v1", LABEL_CHARS + 4)
    _, hover = plotly_reading(nodes["hovertext"][0])
    assert hover[1] == name and hover[3] == f"versions: {name}, v1"
    _, edge = plotly_reading(edges["text"][0])
    assert edge[1] == f"{name} → frontend"
    assert f"split: {name} 25.0% · v1 75.0%" in edge
    assert nodes["customdata"][0] == name  # ids stay raw: data, never markup


def test_a_long_name_is_clipped_under_its_node_but_whole_in_the_hover() -> None:
    name = "recommendations-service-eu-west-1-canary"
    nodes = build_figure(hostile_graph([name]))["data"][1]
    assert plotly_reading(nodes["text"][0])[1][1] == "recommendations-service…"
    assert len("recommendations-service…") == LABEL_CHARS
    assert plotly_reading(nodes["hovertext"][0])[1][1] == name
    assert clip("short") == "short"


def test_plotly_text_leaves_ordinary_names_alone() -> None:
    assert plotly_text("checkout-v2.payments_1 · ünïcode") == "checkout-v2.payments_1 · ünïcode"


@pytest.mark.fuzz
@examples()
@given(names=st.lists(
    st.one_of(
        st.text(min_size=1, max_size=40),
        st.builds("".join, st.lists(st.sampled_from(
            ["<", ">", "&", "'", '"', "$", "\n", "\r", "<a href=x>", "</span>", "<br>", "&lt;",
             "&#60;", "&amp;", "<b>", "svc", " ", "%{x}"]), min_size=1, max_size=12)),
    ),
    min_size=1, max_size=5, unique=True))
def test_fuzz_no_name_turns_into_plotly_markup(names: list[str]) -> None:
    figure = build_figure(hostile_graph(names))
    for text in every_text(figure):
        tags, _ = plotly_reading(text)
        assert tags <= OUR_TAGS, text
        assert "$" not in text
    for name, label in zip(names, figure["data"][1]["text"], strict=True):
        assert plotly_reading(label)[1][1] == clip(name)
    outcome("dashboard.figure", "ok")
