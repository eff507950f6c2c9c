"""Turn a service graph (graphstore.GraphJSON) into a Plotly figure. Pure: values in, dict out.

Nodes are markers at the positions from ``layout.layered_layout``; every edge is an
annotation arrow from caller to callee coloured by health, with an invisible-ish marker at
its midpoint that carries the hover (an arrow annotation has no hover of its own). Below
the diamond, a padlock when requests came over mTLS and the denial labels
(``edge_security``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from meshui.dashboard import edge_security
from meshui.dashboard.health import HEALTH, HealthScale
from meshui.dashboard.layout import Position, layered_layout
from meshui.dashboard.plotly_text import plotly_text
from proxies.identity.spiffe import DEFAULT_TRUST_DOMAIN
from proxies.telemetry.events import EDGE_EVENTS

TEXT = "#c9d1d9"
MUTED = "#8b949e"
NODE_FILL = "#161b22"
BACKGROUND = "#0d1117"
FONT = "Inter, system-ui, -apple-system, Segoe UI, Roboto, sans-serif"

# A node's name is drawn about this far under its centre (data units).
NAME_BELOW = 0.2
# Reverse edges (a -> b and b -> a) are drawn side by side, this far apart (data units).
PARALLEL_OFFSET = 0.07


# Longest label drawn under a node, in characters: longer names would run over their
# neighbours. The hover and the side tables show the whole name.
LABEL_CHARS = 24


def clip(value: str, limit: int = LABEL_CHARS) -> str:
    """``value`` cut to ``limit`` characters, the last one an ellipsis when it was cut."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _joined(values: Iterable[object], separator: str) -> str:
    return separator.join(plotly_text(v) for v in values)


def health_color(requests: int, error_rate: float, scale: HealthScale = HEALTH) -> str:
    """The colour of ``scale``'s level for this traffic (meshui.dashboard.health)."""
    return scale.level(requests, error_rate).color


def format_rate(rps: float) -> str:
    if rps >= 100:
        return f"{rps:,.0f}/s"
    if rps >= 10:
        return f"{rps:.1f}/s"
    return f"{rps:.2f}/s"


def format_ms(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def format_percent(rate: float) -> str:
    return f"{rate * 100:.2f}%"


def node_size(rps: float) -> float:
    """Marker diameter in pixels: grows with the log of the request rate."""
    return round(min(56.0, 30.0 + 9.0 * math.log10(1.0 + rps)), 1)


def edge_width(rps: float) -> float:
    return round(min(6.0, 1.6 + 1.4 * math.log10(1.0 + rps)), 2)


def _stats_lines(stats: Mapping[str, Any], window: int) -> list[str]:
    return [
        f"{format_rate(stats['rps'])} · {format_percent(stats['error_rate'])} errors",
        f"p50 {format_ms(stats['p50_ms'])} · p95 {format_ms(stats['p95_ms'])}"
        f" · p99 {format_ms(stats['p99_ms'])}",
        f"{stats['requests']:,} requests, {stats['errors']:,} errors in {window} s",
    ]


def node_hover(node: Mapping[str, Any], window: int) -> str:
    versions = _joined(node["versions"], ", ") or "–"
    return "<br>".join(
        [f"<b>{plotly_text(node['service'])}</b>", f"versions: {versions}", *_stats_lines(node, window)]
    )


def events_line(events: Mapping[str, int]) -> str | None:
    """What the sidecars' traffic policy did on this edge, or None when it did nothing.

    In the order of ``proxies.telemetry.events``, each under its ``label``.
    """
    parts = [f"{events[e.key]:,} {e.label}" for e in EDGE_EVENTS if events.get(e.key)]
    return " · ".join(parts) if parts else None


def split_line(by_version: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The edge's observed split between its target's versions, or None without one.

    In the store's order (by version); versions came from the network, so they are escaped.
    """
    parts = [f"{plotly_text(version)} {entry['share'] * 100:.1f}%" for version, entry in by_version.items()]
    return "split: " + " · ".join(parts) if parts else None


def edge_hover(edge: Mapping[str, Any], window: int,
               trust_domain: str = DEFAULT_TRUST_DOMAIN) -> str:
    title = f"<b>{plotly_text(edge['source'])} → {plotly_text(edge['target'])}</b>"
    extra = [line for line in (split_line(edge.get("by_version") or {}),
                               events_line(edge.get("events") or {})) if line]
    security = edge_security.security_lines(edge, trust_domain)
    return "<br>".join([title, *_stats_lines(edge, window), *extra, *security])


def node_label(node: Mapping[str, Any]) -> str:
    versions = plotly_text(clip(" · ".join(node["versions"]), LABEL_CHARS + 4))
    label = f"<b>{plotly_text(clip(node['service']))}</b>"
    if versions:
        label += f"<br><span style='font-size:11px;color:{MUTED}'>{versions}</span>"
    return label


def _edge_points(
    source: Position, target: Position, offset: float
) -> tuple[Position, Position]:
    (x0, y0), (x1, y1) = source, target
    if not offset:
        return (x0, y0), (x1, y1)
    dx, dy = x1 - x0, y1 - y0
    length = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / length * offset, dx / length * offset
    return (x0 + nx, y0 + ny), (x1 + nx, y1 + ny)


def edge_arrow_name(index: int) -> str:
    """What an edge's arrows are named: ``edge-<i>``, ``i`` its point in the ``edges`` trace
    (whose ``customdata`` is its id), so the page can recolour an edge that alerts."""
    return f"edge-{index}"


def build_figure(graph: Mapping[str, Any], positions: Mapping[str, Position] | None = None,
                 scale: HealthScale = HEALTH, expanded: Collection[str] = (),
                 trust_domain: str = DEFAULT_TRUST_DOMAIN) -> dict[str, Any]:
    """The Plotly figure (``{"data": [...], "layout": {...}}``) of ``graph``, coloured by ``scale``.

    The services in ``expanded`` (of a graph read at the instance level) are drawn as boxes
    of their instances (``meshui.dashboard.instance_figure``). Identities on mTLS edges are
    named in ``trust_domain`` (``edge_security``).
    """
    nodes = graph["nodes"]
    edges = graph["edges"]
    window = graph["window"]
    boxes: dict[str, Any] = {}
    if expanded:
        # Imported here: instance_figure builds on this module's helpers.
        from meshui.dashboard import instance_figure as boxed
        if positions is None:
            positions = graph_positions(graph, boxed.layout_heights(nodes, expanded))
        boxes = boxed.boxes_for(nodes, positions, expanded)
    if positions is None:
        positions = graph_positions(graph)
    sizes = {node["id"]: node_size(node["rps"]) for node in nodes}
    pairs = {(e["source"], e["target"]) for e in edges}
    shapes: list[dict[str, Any]] = []
    links: list[tuple[Position, str, str]] = []
    by_id = {node["id"]: node for node in nodes}

    annotations: list[dict[str, Any]] = []
    # Drawn last, over the arrows and the boxes: padlocks and denial labels, kept off the
    # nodes and the names under them where they can be.
    obstacles = [p for x, y in positions.values() for p in ((x, y), (x, y - NAME_BELOW))]
    security_shapes: list[dict[str, Any]] = []
    security_annotations: list[dict[str, Any]] = []
    mid_x: list[float] = []
    mid_y: list[float] = []
    mid_color: list[str] = []
    mid_hover: list[str] = []
    mid_ids: list[str] = []
    for edge in edges:
        src, dst = edge["source"], edge["target"]
        color = health_color(edge["requests"], edge["error_rate"], scale)
        hover = edge_hover(edge, window, trust_domain)
        # Where the edge's line runs between, for its padlock and labels (None: a self-call).
        ends: tuple[Position, Position] | None = None
        if src != dst and src in positions and dst in positions:
            ends = (positions[src], positions[dst])
        if src == dst:  # a service calling itself: no arrow, a marker above the node
            x, y = boxed.self_loop_point(boxes[src]) if src in boxes else positions[src]
            mid_x.append(x)
            mid_y.append(y if src in boxes else y + 0.28)
        elif src in boxes or dst in boxes:
            parts = boxed.boxed_edge(edge, positions, sizes, boxes, by_id, color)
            annotations += [arrow | {"name": edge_arrow_name(len(mid_ids))}
                            for arrow in parts.annotations]
            shapes += parts.shapes
            links += parts.links
            mid_x.append(parts.mid[0])
            mid_y.append(parts.mid[1])
        else:
            offset = PARALLEL_OFFSET if (dst, src) in pairs else 0.0
            (x0, y0), (x1, y1) = _edge_points(positions[src], positions[dst], offset)
            ends = ((x0, y0), (x1, y1))
            annotations.append({
                "x": x1, "y": y1, "ax": x0, "ay": y0,
                "xref": "x", "yref": "y", "axref": "x", "ayref": "y",
                "text": "", "showarrow": True,
                "arrowhead": 2, "arrowsize": 1.1, "arrowwidth": edge_width(edge["rps"]),
                "arrowcolor": color,
                "standoff": sizes.get(dst, 30) / 2 + 4,
                "startstandoff": sizes.get(src, 30) / 2 + 2,
                "opacity": 0.9, "name": edge_arrow_name(len(mid_ids)),
            })
            mid_x.append((x0 + x1) / 2)
            mid_y.append((y0 + y1) / 2)
        security = edge_security.edge_security(len(mid_ids), edge, (mid_x[-1], mid_y[-1]),
                                               ends, window, trust_domain, obstacles)
        security_shapes += security.shapes
        security_annotations += security.annotations
        mid_color.append(color)
        mid_hover.append(hover)
        mid_ids.append(f"{src}->{dst}")

    node_ids = [node["id"] for node in nodes]
    node_colors = [health_color(n["requests"], n["error_rate"], scale) for n in nodes]
    # An expanded service's point is under its box, where its label is (the click that
    # collapses it); its ring is not drawn.
    points = {i: ((boxes[i].left + boxes[i].right) / 2, boxes[i].bottom - 0.06) if i in boxes
              else positions[i] for i in node_ids}
    data: list[dict[str, Any]] = [
        {
            "type": "scatter", "mode": "markers", "name": "edges",
            "x": mid_x, "y": mid_y, "customdata": mid_ids,
            "text": mid_hover, "hoverinfo": "text",
            "marker": {"size": 9, "color": mid_color, "symbol": "diamond",
                       "line": {"width": 2, "color": BACKGROUND}},
        },
        {
            "type": "scatter", "mode": "markers+text", "name": "services",
            "x": [points[i][0] for i in node_ids], "y": [points[i][1] for i in node_ids],
            "customdata": node_ids,
            "text": [node_label(n) for n in nodes], "textposition": "bottom center",
            "textfont": {"size": 13, "color": TEXT},
            "hovertext": [node_hover(n, window) for n in nodes], "hoverinfo": "text",
            "marker": {"size": [sizes[i] for i in node_ids], "color": NODE_FILL,
                       "line": {"width": 3, "color": node_colors}},
        },
        {
            "type": "scatter", "mode": "text", "name": "rates", "hoverinfo": "skip",
            "x": [positions[i][0] for i in node_ids], "y": [positions[i][1] for i in node_ids],
            "text": [_short_rate(n["rps"]) if n["requests"] and n["id"] not in boxes else ""
                     for n in nodes],
            "textposition": "middle center",
            "textfont": {"size": 10, "color": TEXT},
        },
    ]
    xs = [p[0] for p in positions.values()] or [0.0]
    ys = [p[1] for p in positions.values()] or [0.0]
    if boxes:
        services = data[1]["marker"]
        services["size"] = [22 if i in boxes else sizes[i] for i in node_ids]
        services["opacity"] = [0.0 if i in boxes else 1.0 for i in node_ids]
        data += boxed.instance_traces(nodes, boxes, window, scale)
        data.append({
            "type": "scatter", "mode": "markers", "name": "instance-links",
            "x": [p[0] for p, _, _ in links], "y": [p[1] for p, _, _ in links],
            "customdata": [i for _, _, i in links], "text": [h for _, h, _ in links],
            # Hover targets on the split arrows, not drawn: the edge's own diamond says it.
            "hoverinfo": "text", "marker": {"size": 10, "color": MUTED, "opacity": 0}})
        shapes = [boxed.box_shape(box) for box in boxes.values()] + shapes
        more_x, more_y = boxed.extents(boxes)
        xs, ys = xs + more_x, ys + more_y
    layout = {
        "uirevision": "graph",
        "showlegend": False,
        "hovermode": "closest",
        "dragmode": False,
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": FONT, "color": TEXT, "size": 13},
        "hoverlabel": {"bgcolor": "#1c2330", "bordercolor": "#30363d",
                       "font": {"family": FONT, "color": TEXT, "size": 12}, "align": "left"},
        "xaxis": {"visible": False, "fixedrange": True,
                  "range": [min(xs) - 0.45, max(xs) + 0.45]},
        "yaxis": {"visible": False, "fixedrange": True,
                  "range": [min(ys) - 0.75, max(ys) + 0.45]},
        "annotations": annotations + security_annotations,
    }
    shapes += security_shapes
    if shapes:
        layout["shapes"] = shapes
    return {"data": data, "layout": layout}


def _short_rate(rps: float) -> str:
    if rps >= 1000:
        return f"{rps / 1000:.1f}k"
    if rps >= 10:
        return f"{rps:.0f}"
    return f"{rps:.1f}"


def graph_positions(graph: Mapping[str, Any], heights: Mapping[str, float] | None = None
                    ) -> dict[str, Position]:
    return layered_layout(
        (n["id"] for n in graph["nodes"]), ((e["source"], e["target"]) for e in graph["edges"]),
        heights,
    )


def with_hidden(graph: Mapping[str, Any]) -> dict[str, Any]:
    """``graph`` with ``hidden`` always present (collector.graphstore always sets it; a graph
    built by hand, in tests or by an older collector's publisher, may not)."""
    hidden = graph.get("hidden") or {}
    return {**graph, "hidden": {key: int(hidden.get(key, 0)) for key in ("nodes", "edges")}}


def summary(graph: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers of the summary bar: services, edges, calls per second, error rate.

    Totals add up every call on every edge, as callers saw them (as Kiali's graph summary
    does): a user request that crosses three hops is three calls.
    """
    requests = sum(e["requests"] for e in graph["edges"])
    errors = sum(e["errors"] for e in graph["edges"])
    return {
        "services": len(graph["nodes"]),
        "edges": len(graph["edges"]),
        "rps": round(requests / graph["window"], 3) if graph["window"] else 0.0,
        "error_rate": round(errors / requests, 4) if requests else 0.0,
        "generated_at": graph["generated_at"],
        "hidden": with_hidden(graph)["hidden"],
    }


def page_payload(graph: Mapping[str, Any], scale: HealthScale = HEALTH,
                 expanded: Collection[str] = (),
                 trust_domain: str = DEFAULT_TRUST_DOMAIN) -> dict[str, Any]:
    """Everything the graph page draws from: the graph, its figure and its summary (and the
    services drawn expanded into their instances, when any)."""
    graph = with_hidden(graph)
    payload = {"type": "graph", "graph": graph,
               "figure": build_figure(graph, scale=scale, expanded=expanded,
                                      trust_domain=trust_domain),
               "summary": summary(graph)}
    if expanded:
        payload["expanded"] = sorted(n["id"] for n in graph["nodes"]
                                     if n["id"] in expanded and n.get("instances"))
    return payload
