"""What the graph draws of an edge's security: a padlock for mutual TLS, denial labels.

Pure: an edge (``graphstore.GraphJSON``'s) and the trust domain in, Plotly parts out.

- **mTLS share** = ``events.mtls / requests``, at most 1. ``mtls`` is counted by the
  callee's sidecar for requests that came over mutual TLS with a verified identity
  (``proxies.telemetry.events.MTLS``). A share above 0 draws a closed padlock on the edge's
  line, a little before its diamond (the midpoint), on a plate that hides the line under
  it: an SVG path shape sized in pixels, never an emoji (headless Chromium may draw an
  emoji as a box), with the share beside it while the edge is mixed ("62%").
- **No padlock for plaintext.** A share of 0 does not prove plaintext: an edge into a
  service without a sidecar (an OpenTelemetry SDK reporting on its own) carries no ``mtls``
  count at all. An open padlock would claim what the graph cannot know, on every edge of a
  mesh without sidecars; the hover says what is known instead. Edges from ``unknown``
  (callers outside the mesh, without an identity) never get one.
- **Denials** are labels beside the edge's diamond, one under the other, on the callee's
  side (the padlock then goes on the caller's), or on the caller's when a node is in the
  way there and less so on that side: "12 denied" in red
  (``events.denied``: refused with 403 by the callee's rules) and "5 would be denied" in
  amber (``events.audit_denied``: let through, but the AUDIT rules would deny them).

Hovering the padlock (or the diamond) shows the identities,
``spiffe://<trust domain>/service/<name>`` both ends, and "mTLS: 62% of requests".
Every name is escaped (``plotly_text``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshui.dashboard.health import AMBER, RED
from meshui.dashboard.plotly_text import plotly_text
from proxies.identity.spiffe import SCHEME, SERVICE_PATH
from proxies.policy.schema import UNAUTHENTICATED
from proxies.telemetry.events import AUDIT_DENIED, DENIED

LOCK = "#c9d1d9"  # the padlock and its share: the figure's text colour
PLATE = "rgba(13,17,23,0.88)"  # behind the padlock and the labels, so the edge line does not cross them
HOVER = {"bgcolor": "#1c2330", "bordercolor": "#30363d", "font": {"color": "#c9d1d9", "size": 12}}
LABEL_FONT = 11

# The padlock sits this far (data units: a layer is 1 wide) from the diamond towards the
# caller, at most this share of the way there (a short edge, or a split arrow's midpoint).
LOCK_BEFORE = 0.15
LOCK_BEFORE_MIXED = 0.22  # with its share beside it, the plate is wider
LOCK_BEFORE_MAX = 0.4
# Pixel geometry around the padlock's point (Plotly's pixel-sized shapes: y grows upward).
LOCK_Y = 0  # the padlock's centre
LOCK_HALF_WIDTH = 5.5
BODY_TOP, BODY_BOTTOM = LOCK_Y + 1.5, LOCK_Y - 6.5
SHARE_WIDTH = 30  # room for "100%" at LABEL_FONT px, beside the padlock
LABEL_GAP = 9  # px between the diamond and its labels
# How far (data units) a label's middle is from the diamond, and the room it wants around
# that middle free of nodes and their names before it moves to the other side.
LABEL_REACH = 0.35
LABEL_ROOM = 0.3
LABEL_STEP = -17  # px from one label to the next


def mtls_share(edge: Mapping[str, Any]) -> float | None:
    """The share of the edge's requests that came over mutual TLS, 0..1; None for an edge
    from ``unknown`` (callers outside the mesh) or without requests."""
    requests = int(edge.get("requests") or 0)
    if edge.get("source") == UNAUTHENTICATED or requests <= 0:
        return None
    mtls = int((edge.get("events") or {}).get("mtls") or 0)
    return min(1.0, mtls / requests)


def share_text(share: float) -> str:
    """A mixed share for people: whole percents, never "100%" or "0%" while it is mixed."""
    percent = share * 100
    if percent < 1:
        return "<1%"
    if percent > 99:
        return ">99%"
    return f"{percent:.0f}%"


def identity(trust_domain: str, service: str) -> str:
    """A service's SPIFFE ID (``proxies.identity.spiffe.spiffe_id``'s form), not checked:
    the figure shows whatever name the graph has, escaped by the caller."""
    return f"{SCHEME}{trust_domain}{SERVICE_PATH}{service}"


def security_lines(edge: Mapping[str, Any], trust_domain: str) -> list[str]:
    """The hover's lines about mTLS: the share and, when there is any, both identities."""
    share = mtls_share(edge)
    if edge.get("source") == UNAUTHENTICATED:
        return ["plaintext: callers from outside the mesh (no identity)"]
    if share is None:
        return []
    if share <= 0:
        return [f"mTLS: none seen (plaintext, or no sidecar on {plotly_text(edge['target'])} counts it)"]
    shown = "100%" if share >= 1 else share_text(share)
    return [f"mTLS: {shown} of requests",
            f"{plotly_text(identity(trust_domain, edge['source']))}"
            f" → {plotly_text(identity(trust_domain, edge['target']))}"]


Point = tuple[float, float]


@dataclass(slots=True)
class SecurityParts:
    """The shapes and annotations of every edge's padlock and labels."""

    shapes: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)


def _pixel_shape(x: float, y: float, **shape: Any) -> dict[str, Any]:
    return {"xref": "x", "yref": "y", "xsizemode": "pixel", "ysizemode": "pixel",
            "xanchor": x, "yanchor": y, "layer": "above", **shape}


def _padlock(x: float, y: float, cx: float, name: str) -> list[dict[str, Any]]:
    """A closed padlock centred ``cx`` px right of (x, y), LOCK_Y px below it: a body with a
    keyhole and a shackle, as two paths (Plotly paths take no arcs: the shackle is a cubic)."""
    left, right = cx - LOCK_HALF_WIDTH, cx + LOCK_HALF_WIDTH
    body = (f"M{left},{BODY_TOP} L{right},{BODY_TOP} L{right},{BODY_BOTTOM} "
            f"L{left},{BODY_BOTTOM} Z")
    shackle = (f"M{cx - 3.4},{BODY_TOP} L{cx - 3.4},{BODY_TOP + 2.6} "
               f"C{cx - 3.4},{BODY_TOP + 7.6} {cx + 3.4},{BODY_TOP + 7.6} "
               f"{cx + 3.4},{BODY_TOP + 2.6} L{cx + 3.4},{BODY_TOP}")
    keyhole = f"M{cx},{BODY_TOP - 2.4} L{cx},{BODY_TOP - 5}"
    return [
        _pixel_shape(x, y, type="path", path=body, fillcolor=LOCK, line={"width": 0},
                     name=name),
        _pixel_shape(x, y, type="path", path=shackle, line={"color": LOCK, "width": 1.7},
                     name=name),
        _pixel_shape(x, y, type="path", path=keyhole, line={"color": "#0d1117", "width": 1.6},
                     name=name),
    ]


def _plate(x: float, y: float, x0: float, x1: float, y0: float, y1: float, name: str
           ) -> dict[str, Any]:
    return _pixel_shape(x, y, type="rect", x0=x0, x1=x1, y0=y0, y1=y1, fillcolor=PLATE,
                        line={"width": 0}, name=name)


def lock_point(point: Point, toward: Point | None, distance: float = LOCK_BEFORE) -> Point:
    """Where the padlock goes: from the diamond at ``point`` towards one end of the edge
    (``toward``); at the diamond itself when there is no such end (a self-call)."""
    x, y = point
    if toward is None:
        return point
    dx, dy = toward[0] - x, toward[1] - y
    length = math.hypot(dx, dy)
    if length == 0:
        return point
    step = min(distance, LOCK_BEFORE_MAX * length) / length
    return (x + dx * step, y + dy * step)


def _room(centre: Point, obstacles: Sequence[Point]) -> float:
    return min((math.dist(centre, o) for o in obstacles), default=math.inf)


def labels_on_callee_side(point: Point, ends: tuple[Point, Point],
                          obstacles: Sequence[Point]) -> bool:
    """Whether the labels go beside the diamond on the callee's side (the default), not
    the caller's: only when a node (or its name) is in their way there and less on the
    other side."""
    x, y = point
    towards_callee = 1 if ends[1][0] >= x else -1
    callee_room = _room((x + towards_callee * LABEL_REACH, y), obstacles)
    caller_room = _room((x - towards_callee * LABEL_REACH, y), obstacles)
    return callee_room >= LABEL_ROOM or callee_room >= caller_room


def edge_security(index: int, edge: Mapping[str, Any], point: Point,
                  ends: tuple[Point, Point] | None, window: int, trust_domain: str,
                  obstacles: Sequence[Point] = ()) -> SecurityParts:
    """The padlock (when any request came over mTLS) and the denial labels of the edge
    drawn ``index``-th in the ``edges`` trace, whose diamond is at ``point`` on a line
    between ``ends`` (caller's, callee's; None for a self-call), among nodes and names at
    ``obstacles``; named ``padlock-<i>``, ``mtls-<i>``, ``denied-<i>`` and
    ``audit-denied-<i>``."""
    parts = SecurityParts()
    share = mtls_share(edge)
    events = edge.get("events") or {}
    labelled = any(int(events.get(e.key) or 0) > 0 for e in (DENIED, AUDIT_DENIED))
    callee_side = (ends is None or not labelled
                   or labels_on_callee_side(point, ends, obstacles))
    # The padlock on the line on the other side of the diamond from the labels.
    toward = None if ends is None else ends[0] if callee_side else ends[1]
    locked = share is not None and share > 0
    if locked:
        assert share is not None
        mixed = share < 1
        half = LOCK_HALF_WIDTH + 4 + (SHARE_WIDTH / 2 if mixed else 0)
        lock_x = -half + LOCK_HALF_WIDTH + 4 if mixed else 0.0
        name = f"padlock-{index}"
        x, y = lock_point(point, toward, LOCK_BEFORE_MIXED if mixed else LOCK_BEFORE)
        parts.shapes.append(_plate(x, y, -half, half, LOCK_Y - 9, LOCK_Y + 10, name))
        parts.shapes += _padlock(x, y, lock_x, name)
        hover = "<br>".join(security_lines(edge, trust_domain))
        # Over the padlock and its share: the text, and the hover on the padlock itself.
        parts.annotations.append({
            "x": x, "y": y, "xref": "x", "yref": "y", "showarrow": False, "name": f"mtls-{index}",
            "xshift": half - SHARE_WIDTH / 2 - 2 if mixed else 0, "yshift": LOCK_Y + 1,
            "width": SHARE_WIDTH if mixed else 2 * half, "height": 17,
            "text": share_text(share) if mixed else " ", "align": "right",
            "font": {"size": LABEL_FONT, "color": LOCK}, "hovertext": hover, "hoverlabel": HOVER})
    x, y = point
    rightwards = toward is None or toward[0] <= x
    label_y = 0
    for event, color, name in ((DENIED, RED, "denied"), (AUDIT_DENIED, AMBER, "audit-denied")):
        count = int(events.get(event.key) or 0)
        if count <= 0:
            continue
        why = ("refused with 403 by the target's authorization rules" if event is DENIED
               else "let through; the AUDIT rules would deny them once enforced")
        parts.annotations.append({
            "x": x, "y": y, "xref": "x", "yref": "y", "showarrow": False,
            "name": f"{name}-{index}", "yshift": label_y,
            "xanchor": "left" if rightwards else "right",
            "xshift": LABEL_GAP if rightwards else -LABEL_GAP,
            "text": f"{count:,} {event.label}", "font": {"size": LABEL_FONT, "color": color},
            "bgcolor": PLATE, "bordercolor": color, "borderwidth": 1, "borderpad": 2,
            "hovertext": f"{count:,} requests {why}, in {window} s<br>"
                         f"{plotly_text(edge['source'])} → {plotly_text(edge['target'])}",
            "hoverlabel": {**HOVER, "bordercolor": color}})
        label_y += LABEL_STEP
    return parts
