from __future__ import annotations

from meshui.dashboard.layout import layered_layout, layers

BOOKSHOP = [
    ("unknown", "frontend"),
    ("frontend", "catalog"), ("frontend", "reviews"), ("frontend", "checkout"),
    ("catalog", "inventory"), ("reviews", "ratings"), ("checkout", "payments"),
]


def test_callers_stand_left_of_what_they_call() -> None:
    assert layers([], BOOKSHOP) == {
        "unknown": 0, "frontend": 1, "catalog": 2, "reviews": 2, "checkout": 2,
        "inventory": 3, "ratings": 3, "payments": 3,
    }


def test_a_service_sits_on_its_longest_call_path() -> None:
    edges = [("a", "b"), ("b", "c"), ("a", "c")]
    assert layers([], edges) == {"a": 0, "b": 1, "c": 2}


def test_each_layer_is_centred_and_ordered_top_down() -> None:
    positions = layered_layout([], BOOKSHOP)
    assert positions["unknown"] == (0.0, 0.0)
    assert positions["frontend"] == (1.0, 0.0)
    assert sorted(positions[n][1] for n in ("catalog", "reviews", "checkout")) == [-1.0, 0.0, 1.0]
    # Children follow their parents' order, so the chains do not cross.
    for parent, child in (("catalog", "inventory"), ("reviews", "ratings"),
                          ("checkout", "payments")):
        assert positions[child][1] == positions[parent][1]


def test_the_layout_does_not_depend_on_input_order() -> None:
    nodes = ["ratings", "frontend", "unknown", "catalog"]
    assert layered_layout(nodes, BOOKSHOP) == layered_layout(
        reversed(nodes), list(reversed(BOOKSHOP)))


def test_cycles_and_self_loops_do_not_break_the_layering() -> None:
    edges = [("gateway", "a"), ("a", "b"), ("b", "a"), ("b", "b")]
    assert layers([], edges) == {"gateway": 0, "a": 1, "b": 2}
    island = layers([], [("x", "y"), ("y", "x")])
    assert sorted(island.values()) == [0, 1]


def test_isolated_services_get_a_place_too() -> None:
    positions = layered_layout(["lonely", "solo"], [])
    assert positions == {"lonely": (0.0, 0.5), "solo": (0.0, -0.5)}


def test_positions_stay_put_when_only_traffic_changes() -> None:
    from meshui.dashboard.figure import build_figure
    from tests.meshui.test_figure import stats

    def figure_positions(busy: str) -> dict[str, tuple[float, float]]:
        services = sorted({name for edge in BOOKSHOP for name in edge})
        graph = {
            "window": 60, "generated_at": 1.0,
            "nodes": [{"id": name, "service": name, "versions": ["v1"],
                       **stats(5000 if name == busy else 1, 0)} for name in services],
            "edges": [{"source": src, "target": dst, **stats(9000 if dst == busy else 2, 1)}
                      for src, dst in BOOKSHOP],
        }
        nodes = build_figure(graph)["data"][1]
        return dict(zip(nodes["customdata"], zip(nodes["x"], nodes["y"], strict=True),
                        strict=True))

    # One service, then another, takes nearly all the traffic: nobody moves.
    assert figure_positions("ratings") == figure_positions("checkout") == layered_layout(
        [], BOOKSHOP)
