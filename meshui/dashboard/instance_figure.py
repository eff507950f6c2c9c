"""A service expanded into its instances on the graph figure. Pure: values in, Plotly parts out.

An expanded service is drawn as a box in its slot, one row per instance (by proxy id): a
ring coloured by what the instance served, its name, and what its callers' load balancers
say about it (``meshui.dashboard.instance_graph``): its share of the calls into the service,
the EWMA estimate, the requests in flight. An ejected instance is drawn out: a red crossed
ring, greyed text, "ejected until HH:MM:SS UTC", and a dotted line where the calls would go.

Each call edge into the box is split into one arrow per instance, as wide as the part of the
caller's calls that instance got (the caller's ``callers`` share from the heartbeats; for a
caller without sidecar reports, e.g. ``unknown``, the share of the requests the instance
served); edges out of the box leave from its right side. The service's own point (the
``services`` trace, the click that collapses it) sits under the box, where its label is.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meshui.dashboard.figure import (
    MUTED,
    NODE_FILL,
    TEXT,
    clip,
    edge_width,
    format_ms,
    format_percent,
    health_color,
    plotly_text,
)
from meshui.dashboard.health import HEALTH, RED, HealthScale
from meshui.dashboard.layout import Position

ROW = 0.3  # one instance row, in data units (a layer is 1 wide, a slot 1 high)
PAD = 0.1  # above the first row and below the last
LEFT = 0.1  # the box starts this far left of its service's x ...
WIDTH = 0.88  # ... and is this wide: the ring, then the name and the numbers to its right
LABEL_ROOM = 0.5  # below the box: the service's label and its policy marks
MAX_ROWS = 10  # instances drawn per box; the rest are counted in a last row
MARKER = 15  # an instance's ring, px
NAME_CHARS = 22
BOX_FILL = "rgba(22,27,34,0.92)"
BOX_LINE = "#30363d"
OUT = "#6e7681"  # an ejected instance's greyed name
CUT = "rgba(248,81,73,0.55)"  # the dotted line where the calls to an ejected instance would go


@dataclass(frozen=True, slots=True)
class Box:
    """One expanded service: where its box is and where each instance's row is."""

    service: str
    x: float
    y: float  # the centre of the service's slot
    instances: tuple[Mapping[str, Any], ...]
    hidden: int  # instances beyond MAX_ROWS
    rows: tuple[Position, ...] = field(default=())

    @property
    def height(self) -> float:
        return box_height(len(self.instances) + self.hidden)

    @property
    def top(self) -> float:
        return self.y + self.height / 2

    @property
    def bottom(self) -> float:
        return self.y - self.height / 2

    @property
    def left(self) -> float:
        return self.x - LEFT

    @property
    def right(self) -> float:
        return self.x - LEFT + WIDTH


def _row_count(count: int) -> int:
    return min(count, MAX_ROWS) + (1 if count > MAX_ROWS else 0)


def box_height(count: int) -> float:
    return _row_count(count) * ROW + 2 * PAD


def layout_heights(nodes: Sequence[Mapping[str, Any]], expanded: Collection[str]) -> dict[str, float]:
    """The slots each expanded service needs (layout.layered_layout's ``heights``)."""
    return {node["id"]: box_height(len(node["instances"])) + LABEL_ROOM
            for node in nodes if node["id"] in expanded and node.get("instances")}


def boxes_for(nodes: Sequence[Mapping[str, Any]], positions: Mapping[str, Position],
              expanded: Collection[str]) -> dict[str, Box]:
    """A box per expanded service that has instances (a service without any stays a node)."""
    boxes = {}
    for node in nodes:
        if node["id"] not in expanded or not node.get("instances"):
            continue
        x, y = positions[node["id"]]
        y += LABEL_ROOM / 2  # the box above, its label below, within the slot
        shown = tuple(node["instances"][:MAX_ROWS])
        hidden = len(node["instances"]) - len(shown)
        top = y + box_height(len(shown) + hidden) / 2 - PAD - ROW / 2
        rows = tuple((x, top - i * ROW) for i in range(len(shown)))
        boxes[node["id"]] = Box(node["id"], x, y, shown, hidden, rows)
    return boxes


def served_shares(node: Mapping[str, Any]) -> dict[str, float]:
    """Each instance's part of the calls into its service: from its callers' heartbeats when
    any report traffic, else from the requests it served in the window."""
    instances = node.get("instances") or []
    reported = {i["instance"]: sum(c["requests"] for c in i.get("callers") or []) for i in instances}
    total = sum(reported.values())
    if total:
        return {name: n / total for name, n in reported.items()}
    served = sum(i["requests"] for i in instances)
    return {i["instance"]: (i["requests"] / served if served else 0.0) for i in instances}


def caller_shares(box: Box, caller: str, node: Mapping[str, Any]) -> tuple[dict[str, float], bool]:
    """Each instance's part of ``caller``'s calls into the box, and whether the caller's
    sidecars reported it (False: the served shares stand in)."""
    shares: dict[str, float] = {}
    for instance in node.get("instances") or []:
        for entry in instance.get("callers") or []:
            if entry["service"] == caller:
                shares[instance["instance"]] = entry["share"]
    if any(shares.values()):
        return shares, True
    return served_shares(node), False


def utc_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")


def ejected(instance: Mapping[str, Any]) -> bool:
    return bool(instance.get("ejected"))


def numbers_line(instance: Mapping[str, Any], share: float) -> str:
    """What a row says under the name: share · EWMA · in flight, or that it is out."""
    if ejected(instance):
        until = instance.get("ejected_until")
        return "ejected" + (f" until {utc_time(until)}" if until else "")
    parts = [f"{share * 100:.0f}%" if share >= 0.01 or not share else f"{share * 100:.1f}%"]
    if instance.get("ewma_ms") is not None:
        parts.append(format_ms(instance["ewma_ms"]))
    parts.append(f"{instance.get('outstanding', 0)} in flight")
    return " · ".join(parts)


def instance_label(instance: Mapping[str, Any], share: float) -> str:
    color = RED if ejected(instance) else MUTED
    name = plotly_text(clip(instance["instance"], NAME_CHARS))
    name = f"<span style='color:{OUT}'>{name}</span>" if ejected(instance) else f"<b>{name}</b>"
    return (f"{name}<br><span style='font-size:9px;color:{color}'>"
            f"{plotly_text(numbers_line(instance, share))}</span>")


def instance_hover(service: str, instance: Mapping[str, Any], share: float, window: int) -> str:
    lines = [f"<b>{plotly_text(instance['instance'])}</b>",
             f"{plotly_text(service)} · {format_percent(share)} of its calls"]
    if instance["requests"]:
        lines.append(f"served {instance['requests']:,} requests in {window} s · "
                     f"{format_percent(instance['error_rate'])} errors · "
                     f"p50 {format_ms(instance['p50_ms'])} · p99 {format_ms(instance['p99_ms'])}")
    else:
        lines.append(f"served no requests in {window} s")
    for caller in instance.get("callers") or []:
        lines.append(f"{plotly_text(caller['service'])}: {caller['share'] * 100:.1f}% of its calls "
                     f"({caller['requests']:,} in its last heartbeat interval)")
    if instance.get("ewma_ms") is not None:
        lines.append(f"EWMA {format_ms(instance['ewma_ms'])} · {instance.get('outstanding', 0)} in "
                     f"flight · {instance.get('overflow', 0):,} pool overflows")
    if ejected(instance):
        until = instance.get("ejected_until")
        lines.append("<b>ejected</b> by a caller's outlier detection"
                     + (f" until {utc_time(until)}" if until else ""))
    if not instance.get("connected", True):
        lines.append("sidecar not connected")
    return "<br>".join(lines)


def box_shape(box: Box) -> dict[str, Any]:
    """A rounded rectangle (SVG path in data units) around the box's rows."""
    x0, x1, y0, y1, r = box.left, box.right, box.bottom, box.top, 0.05
    path = (f"M {x0 + r},{y0} L {x1 - r},{y0} Q {x1},{y0} {x1},{y0 + r} L {x1},{y1 - r} "
            f"Q {x1},{y1} {x1 - r},{y1} L {x0 + r},{y1} Q {x0},{y1} {x0},{y1 - r} "
            f"L {x0},{y0 + r} Q {x0},{y0} {x0 + r},{y0} Z")
    return {"type": "path", "path": path, "xref": "x", "yref": "y", "layer": "below",
            "fillcolor": BOX_FILL, "line": {"color": BOX_LINE, "width": 1}}


def instance_traces(nodes: Sequence[Mapping[str, Any]], boxes: Mapping[str, Box], window: int,
                    scale: HealthScale = HEALTH) -> list[dict[str, Any]]:
    """The ``instances`` trace (a ring and a label per row; customdata [proxy id, service])
    and the ``instances-more`` text of boxes with more instances than rows."""
    by_id = {node["id"]: node for node in nodes}
    xs, ys, ids, labels, hovers, lines, fills, symbols = [], [], [], [], [], [], [], []
    more_x, more_y, more_text = [], [], []
    for service, box in boxes.items():
        shares = served_shares(by_id[service])
        for instance, (x, y) in zip(box.instances, box.rows, strict=True):
            share = shares.get(instance["instance"], 0.0)
            out = ejected(instance)
            xs.append(x)
            ys.append(y)
            ids.append([instance["instance"], service])
            labels.append(instance_label(instance, share))
            hovers.append(instance_hover(service, instance, share, window))
            lines.append(RED if out else health_color(instance["requests"], instance["error_rate"], scale))
            fills.append("#2d1417" if out else NODE_FILL)
            symbols.append("circle-x" if out else "circle")
        if box.hidden:
            more_x.append(box.x)
            more_y.append(box.bottom + PAD + ROW / 2)
            more_text.append(f"+{box.hidden} more instances")
    traces: list[dict[str, Any]] = [{
        "type": "scatter", "mode": "markers+text", "name": "instances",
        "x": xs, "y": ys, "customdata": ids, "text": labels, "textposition": "middle right",
        "textfont": {"size": 10, "color": TEXT}, "hovertext": hovers, "hoverinfo": "text",
        "marker": {"size": MARKER, "color": fills, "symbol": symbols,
                   "line": {"width": 2.5, "color": lines}},
    }]
    if more_x:
        traces.append({"type": "scatter", "mode": "text", "name": "instances-more",
                       "hoverinfo": "skip", "x": more_x, "y": more_y, "text": more_text,
                       "textposition": "middle right", "textfont": {"size": 10, "color": MUTED}})
    return traces


@dataclass
class EdgeParts:
    """An edge drawn to or from a box: its arrows, its dotted "out" lines, the point that
    carries the edge's own hover, and a hover point per split arrow."""

    annotations: list[dict[str, Any]] = field(default_factory=list)
    shapes: list[dict[str, Any]] = field(default_factory=list)
    mid: Position = (0.0, 0.0)
    links: list[tuple[Position, str, str]] = field(default_factory=list)  # (point, hover, id)


def _arrow(start: Position, end: Position, width: float, color: str, standoff: float,
           startstandoff: float, opacity: float = 0.9) -> dict[str, Any]:
    return {"x": end[0], "y": end[1], "ax": start[0], "ay": start[1],
            "xref": "x", "yref": "y", "axref": "x", "ayref": "y", "text": "", "showarrow": True,
            "arrowhead": 2, "arrowsize": 1.0, "arrowwidth": width, "arrowcolor": color,
            "standoff": standoff, "startstandoff": startstandoff, "opacity": opacity}


def boxed_edge(edge: Mapping[str, Any], positions: Mapping[str, Position], sizes: Mapping[str, float],
               boxes: Mapping[str, Box], nodes: Mapping[str, Mapping[str, Any]], color: str
               ) -> EdgeParts:
    """An edge with at least one end expanded, split per instance when the target is."""
    src, dst = edge["source"], edge["target"]
    parts = EdgeParts()
    source_box = boxes.get(src)
    if source_box is not None:
        start, start_off = (source_box.right, source_box.y), 0.0
    else:
        start, start_off = positions[src], sizes.get(src, 30) / 2 + 2
    box = boxes.get(dst)
    if box is None:  # out of a box, into a plain node
        end = positions[dst]
        parts.annotations.append(_arrow(start, end, edge_width(edge["rps"]), color,
                                        sizes.get(dst, 30) / 2 + 4, start_off))
        parts.mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        return parts
    shares, reported = caller_shares(box, src, nodes[dst])
    entry = (box.left, box.y)
    parts.mid = ((start[0] + entry[0]) / 2, (start[1] + entry[1]) / 2)
    drawn = False
    for instance, point in zip(box.instances, box.rows, strict=True):
        name = instance["instance"]
        share = shares.get(name, 0.0)
        link_id = f"{src}->{name}"
        mid = ((start[0] + point[0]) / 2 + 0.04, (start[1] + point[1]) / 2)
        if ejected(instance):
            parts.shapes.append({"type": "line", "xref": "x", "yref": "y", "x0": start[0],
                                 "y0": start[1], "x1": point[0] - 0.05, "y1": point[1],
                                 "layer": "below", "line": {"color": CUT, "width": 1.5,
                                                            "dash": "dot"}})
            until = instance.get("ejected_until")
            parts.links.append((mid, f"<b>{plotly_text(src)} → {plotly_text(name)}</b><br>ejected"
                                     + (f" until {utc_time(until)}" if until else "")
                                     + f" · {share * 100:.1f}% of the calls", link_id))
            continue
        if share <= 0:
            continue
        drawn = True
        width = max(1.0, edge_width(edge["rps"] * share))
        parts.annotations.append(_arrow(start, point, width, color, MARKER / 2 + 3, start_off))
        whose = (f"of {plotly_text(src)}'s calls to {plotly_text(dst)} (its sidecars' last "
                 "heartbeat interval)") if reported else f"of the requests {plotly_text(dst)} served"
        parts.links.append((mid, f"<b>{plotly_text(src)} → {plotly_text(name)}</b><br>"
                                 f"{share * 100:.1f}% {whose}", link_id))
    if not drawn:  # nothing known of the split yet: one arrow to the box
        parts.annotations.append(_arrow(start, entry, edge_width(edge["rps"]), color, 2, start_off))
    return parts


def extents(boxes: Mapping[str, Box]) -> tuple[list[float], list[float]]:
    """x and y values the axes must reach so every box and its labels fit."""
    xs: list[float] = []
    ys: list[float] = []
    for box in boxes.values():
        xs += [box.left, box.right + 0.3]
        ys += [box.top, box.bottom - LABEL_ROOM + 0.2]
    return xs, ys


def self_loop_point(box: Box) -> Position:
    return box.x, box.top + 0.12

