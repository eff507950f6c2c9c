"""The graph figure with services expanded into their instances (meshui.dashboard.instance_figure)."""

from __future__ import annotations

from typing import Any

from meshui.dashboard.figure import build_figure, page_payload
from meshui.dashboard.health import RED
from meshui.dashboard.instance_figure import MAX_ROWS, boxes_for, layout_heights
from tests.meshui.test_figure import stats

NOW = 1_800_000_000.0


def instance(name: str, served: int, callers: list[tuple[str, float, int]] = (), **live: Any
             ) -> dict[str, Any]:
    return {"instance": name, **stats(served, 0),
            "callers": [{"service": s, "share": share, "requests": n} for s, share, n in callers],
            "ewma_ms": 4.2, "outstanding": 1, "ejected": False, "ejected_until": None,
            "overflow": 0, "connected": True, "last_seen": NOW, **live}


def graph(catalog: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "window": 60, "generated_at": NOW,
        "nodes": [
            {"id": "catalog", "service": "catalog", "versions": ["v1"], **stats(600, 0),
             "instances": catalog},
            {"id": "frontend", "service": "frontend", "versions": ["v1"], **stats(600, 0),
             "instances": [instance("frontend-1", 600)]},
            {"id": "inventory", "service": "inventory", "versions": ["v1"], **stats(600, 0),
             "instances": []},
            {"id": "unknown", "service": "unknown", "versions": [], **stats(0, 0)},
        ],
        "edges": [
            {"source": "unknown", "target": "catalog", **stats(60, 0)},
            {"source": "frontend", "target": "catalog", **stats(600, 0)},
            {"source": "catalog", "target": "inventory", **stats(600, 0)},
        ],
    }


CATALOG = [
    instance("catalog-1", 450, [("frontend", 0.75, 30)]),
    instance("catalog-2", 150, [("frontend", 0.25, 10)], ewma_ms=9.5, outstanding=0),
    instance("catalog-3", 0, [("frontend", 0.0, 0)], ejected=True, ejected_until=NOW + 25,
             ewma_ms=80.0, outstanding=0),
]


def trace(figure: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in figure["data"] if t["name"] == name)


def test_an_expanded_service_is_a_box_with_a_row_per_instance_and_its_numbers() -> None:
    figure = build_figure(graph(CATALOG), expanded={"catalog"})
    rows = trace(figure, "instances")
    assert [c for c in rows["customdata"]] == [["catalog-1", "catalog"], ["catalog-2", "catalog"],
                                               ["catalog-3", "catalog"]]
    assert rows["y"] == sorted(rows["y"], reverse=True)  # top down, by name
    assert "75% · 4.20 ms · 1 in flight" in rows["text"][0]
    assert "25% · 9.50 ms · 0 in flight" in rows["text"][1]
    # The ejected one is out: a red crossed ring, its end time instead of its numbers.
    assert rows["marker"]["symbol"] == ["circle", "circle", "circle-x"]
    assert rows["marker"]["line"]["color"][2] == RED
    assert "ejected until 08:00:25 UTC" in rows["text"][2]
    assert "ejected" in rows["hovertext"][2] and "frontend: 0.0% of its calls" in rows["hovertext"][2]
    (box,) = [s for s in figure["layout"]["shapes"] if s["type"] == "path"]
    assert box["path"].startswith("M ")
    # Its own point moves under the box (where the label is) and draws no ring there.
    services = trace(figure, "services")
    i = services["customdata"].index("catalog")
    assert services["marker"]["opacity"][i] == 0.0
    assert trace(figure, "rates")["text"][i] == ""
    assert page_payload(graph(CATALOG), expanded={"catalog"})["expanded"] == ["catalog"]


def test_every_arrow_of_a_split_edge_carries_the_edge_s_name() -> None:
    figure = build_figure(graph(CATALOG), expanded={"catalog"})
    edges = trace(figure, "edges")["customdata"]
    names = {a["name"] for a in figure["layout"]["annotations"]}
    assert names == {f"edge-{i}" for i in range(len(edges))}
    arrows = [a for a in figure["layout"]["annotations"]
              if a["name"] == f"edge-{edges.index('frontend->catalog')}"]
    assert len(arrows) == 2  # one per instance that takes frontend's calls


def test_a_callers_edge_is_split_per_instance_by_its_share_and_an_ejected_one_is_a_dotted_line() -> None:
    figure = build_figure(graph(CATALOG), expanded={"catalog"})
    boxes = boxes_for(graph(CATALOG)["nodes"], {"catalog": (2.0, 0.0)}, {"catalog"})
    assert len(boxes["catalog"].rows) == 3
    rows = trace(figure, "instances")
    into = {(a["x"], a["y"]): a for a in figure["layout"]["annotations"]}
    one, two = into[(rows["x"][0], rows["y"][0])], into[(rows["x"][1], rows["y"][1])]
    assert one["arrowwidth"] > two["arrowwidth"]  # 75% of frontend's calls, and 25%
    dotted = [s for s in figure["layout"]["shapes"] if s.get("line", {}).get("dash") == "dot"]
    # From each caller (frontend, unknown) to the ejected instance: no arrow, a dotted line.
    assert [s["y1"] for s in dotted] == [rows["y"][2]] * 2
    assert (rows["x"][2], rows["y"][2]) not in into
    links = trace(figure, "instance-links")
    assert "frontend → catalog-1" in links["text"][links["customdata"].index("frontend->catalog-1")]
    assert "75.0% of frontend's calls to catalog" in links["text"][
        links["customdata"].index("frontend->catalog-1")]
    # unknown has no sidecar to report: the instances' share of what catalog served stands in.
    unknown = links["text"][links["customdata"].index("unknown->catalog-1")]
    assert "75.0% of the requests catalog served" in unknown
    # The edge out of the box leaves from its right side.
    (out,) = [a for a in figure["layout"]["annotations"]
              if (a["x"], a["y"]) == tuple(figure_position(figure, "inventory"))]
    assert out["ax"] > rows["x"][0] and out["startstandoff"] == 0.0


def figure_position(figure: dict[str, Any], service: str) -> tuple[float, float]:
    services = trace(figure, "services")
    i = services["customdata"].index(service)
    return services["x"][i], services["y"][i]


def test_a_service_without_instances_stays_a_node_and_a_box_takes_the_room_it_needs() -> None:
    g = graph(CATALOG)
    heights = layout_heights(g["nodes"], {"catalog", "inventory", "unknown"})
    assert set(heights) == {"catalog"}  # inventory lists none, unknown was not read with any
    figure = build_figure(g, expanded={"catalog", "inventory"})
    services = trace(figure, "services")
    assert services["marker"]["opacity"][services["customdata"].index("inventory")] == 1.0
    many = [instance(f"catalog-{n:02d}", 10) for n in range(MAX_ROWS + 3)]
    figure = build_figure(graph(many), expanded={"catalog"})
    assert len(trace(figure, "instances")["x"]) == MAX_ROWS
    assert trace(figure, "instances-more")["text"] == ["+3 more instances"]


def test_an_instance_name_from_the_network_is_text_in_the_label_and_the_hover() -> None:
    hostile = "<a href='x'>$x$</a>&amp;"
    figure = build_figure(graph([instance(hostile, 10, [("fr<b>ont", 1.0, 3)])]),
                          expanded={"catalog"})
    rows = trace(figure, "instances")
    for text in (rows["text"][0], rows["hovertext"][0]):
        assert "<a " not in text and "$x$" not in text and "&amp;" not in text
        assert "&#60;a href=&#39;x&#39;&#62;&#36;x&#36;" in text
    assert "fr<b>ont" not in rows["hovertext"][0] and "fr&#60;b&#62;ont" in rows["hovertext"][0]
