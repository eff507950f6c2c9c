"""How healthy a service or an edge looks: the one scale the figure, the page and its legend use.

A level is picked by error rate: the first whose ``below`` the rate is under, the last one
(``below`` None) for any rate, ``idle`` without requests. The figure colours arrows and
node rings with ``color``; the page (templates/dashboard/graph.html) gets the scale from the
view as JSON (``page_json``, through ``json_script``) for static/dashboard/graph.js to colour
its tables with, and renders its legend from ``legend``. A level's ``name`` is its CSS class
in static/meshui.css. Thresholds are written for people in one place, ``format_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

GREEN = "#3fb950"
AMBER = "#d29922"
RED = "#f85149"
GREY = "#6e7681"


@dataclass(frozen=True, slots=True)
class HealthLevel:
    """One colour of the scale."""

    name: str  # the CSS class (ok, warn, bad, idle) and the page's word for it
    color: str  # the figure's colour
    below: float | None = None  # error rates under this are this level; None: any rate


class LevelJSON(TypedDict):
    name: str
    below: float | None


class ScaleJSON(TypedDict):
    """What graph.js needs to pick a level: the thresholds, in order, and the idle level."""

    levels: list[LevelJSON]
    idle: str


class LegendItem(TypedDict):
    name: str
    label: str


def format_threshold(rate: float) -> str:
    """An error-rate threshold as the legend writes it: 0.01 -> "1%", 0.025 -> "2.5%"."""
    return f"{rate * 100:g}%"


@dataclass(frozen=True, slots=True)
class HealthScale:
    """Levels by rising error rate, the last one for any rate; ``idle`` for no requests."""

    levels: tuple[HealthLevel, ...]
    idle: HealthLevel

    def __post_init__(self) -> None:
        bounds = [level.below for level in self.levels]
        thresholds = [below for below in bounds if below is not None]
        if bounds != [*thresholds, None] or thresholds != sorted(set(thresholds)):
            raise ValueError(f"health thresholds must rise and end with any rate (None): {bounds}")

    def level(self, requests: int, error_rate: float) -> HealthLevel:
        if not requests:
            return self.idle
        return next(level for level in self.levels if level.below is None or error_rate < level.below)

    def legend(self) -> list[LegendItem]:
        """The legend's entries: "< 1% errors", "< 5%", "≥ 5%", "idle" for the default scale."""
        items: list[LegendItem] = []
        previous: float | None = None
        for level in self.levels:
            if level.below is not None:
                label = f"< {format_threshold(level.below)}"
            else:
                label = "any" if previous is None else f"≥ {format_threshold(previous)}"
            items.append({"name": level.name, "label": label + (" errors" if not items else "")})
            previous = level.below
        items.append({"name": self.idle.name, "label": self.idle.name})
        return items

    def page_json(self) -> ScaleJSON:
        return {"levels": [{"name": level.name, "below": level.below} for level in self.levels],
                "idle": self.idle.name}


def scale(warn_from: float, bad_from: float) -> HealthScale:
    """ok below ``warn_from``, warn below ``bad_from``, bad from there; idle without requests."""
    return HealthScale(
        levels=(HealthLevel("ok", GREEN, warn_from), HealthLevel("warn", AMBER, bad_from),
                HealthLevel("bad", RED)),
        idle=HealthLevel("idle", GREY))


#: Green below 1% errors, amber below 5%, red from 5%, grey when there is no traffic.
HEALTH = scale(0.01, 0.05)
