"""The alerts' JSON in the API (docs/api.md, "Alerts"): rules, states, history, backtests."""

from __future__ import annotations

from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field

from meshui.alerts.metrics import METRICS
from meshui.alerts.models import SEVERITIES
from meshui.alerts.rules import MAX_CONTACT_POINTS, MAX_LABELS
from meshui.alerts.states import State
from meshui.registry.schemas import DATE_TIME

Metric = Literal[METRICS]  # type: ignore[valid-type]
Severity = Literal[SEVERITIES]  # type: ignore[valid-type]
NAME = Field(None, min_length=1, max_length=255)


class TargetIn(Schema):
    """A service (and version), an edge (and the version of its target) or an instance (and
    its service); a name holding `*` is a pattern (docs/alerts.md, "Targets")."""

    model_config = ConfigDict(extra="forbid")

    service: str | None = NAME
    version: str | None = NAME
    source: str | None = NAME
    target: str | None = NAME
    instance: str | None = NAME


class TargetOut(Schema):
    service: str | None = None
    version: str | None = None
    source: str | None = None
    target: str | None = None
    instance: str | None = None


class RuleIn(Schema):
    """A rule as written (POST, PUT) or tried (preview)."""

    name: str = Field(min_length=1, max_length=200)
    target: TargetIn
    metric: Metric = Field(description="error_rate (ratio 0..1), p50_ms, p95_ms, p99_ms, rps "
                                       "(req/s), a policy event (events/s) or no_data (1 "
                                       "without data)")
    window_s: int = Field(ge=10, le=3600, description="seconds the metric is computed over")
    op: Literal[">", "<"] | None = Field(None, description="`>`: fires above `fire`; `<`: "
                                                          "below (default `>` for no_data)")
    fire: float | None = Field(None, allow_inf_nan=False,
                               description="the threshold that fires (required but for "
                                           "no_data)")
    recover: float | None = Field(None, allow_inf_nan=False,
                                  description="the threshold it recovers past (default: "
                                              "`fire`); with `>` at most `fire`")
    for_s: int = Field(0, ge=0, le=7 * 24 * 3600,
                       description="pending period: the breach must hold this long to fire")
    keep_firing_s: int = Field(0, ge=0, le=7 * 24 * 3600,
                               description="keeps firing (Recovering) this long once recovered")
    severity: Severity = "warning"
    labels: dict[str, str] = Field(default_factory=dict, max_length=MAX_LABELS)
    contact_points: list[int] = Field(default_factory=list, max_length=MAX_CONTACT_POINTS,
                                      description="ids of contact points to notify")


class RuleOut(Schema):
    id: int
    name: str
    target: TargetOut
    metric: str
    window_s: int
    op: str
    fire: float
    recover: float
    for_s: int
    keep_firing_s: int
    severity: str
    labels: dict[str, str]
    contact_points: list[int]
    created_at: str = Field(json_schema_extra=DATE_TIME)
    updated_at: str = Field(json_schema_extra=DATE_TIME)


class RuleList(Schema):
    rules: list[RuleOut] = Field(description="by name")


class AlertOut(Schema):
    rule: int = Field(description="the rule's id")
    name: str
    severity: str
    labels: dict[str, str]
    metric: str
    target: TargetOut = Field(description="the concrete target (a pattern rule has one entry "
                                          "per match; the pattern itself while none)")
    state: State
    since: str = Field(json_schema_extra=DATE_TIME)
    value: float | None = Field(description="at the last evaluation; null: no data")
    detail: str = Field(description="why it is in this state")
    last_evaluated: str | None = Field(json_schema_extra=DATE_TIME)
    silenced: bool = Field(description="an active silence matches it: it is not notified")


class AlertList(Schema):
    interval_s: int = Field(description="seconds between evaluations")
    alerts: list[AlertOut] = Field(description="by rule name, then target")


class TransitionOut(Schema):
    at: str = Field(json_schema_extra=DATE_TIME)
    target: TargetOut
    from_state: State
    to_state: State
    value: float | None = Field(description="the value that caused it (null: no data)")
    detail: str = Field(description="why")


class History(Schema):
    rule: int
    count: int
    page: int
    per_page: int
    transitions: list[TransitionOut] = Field(description="newest first")


class Period(Schema):
    state: State
    start: int = Field(description="epoch seconds of its first evaluation")
    end: int = Field(description="a step after its last one")


class PreviewTarget(Schema):
    target: TargetOut
    values: list[float | None] = Field(description="the metric at each time; null: no data")
    states: list[State] = Field(description="the rule's state after each evaluation")
    periods: list[Period] = Field(description="runs of Pending, Firing, Recovering, NoData")
    transitions: list[TransitionOut]


class Preview(Schema):
    step: int = Field(description="seconds between evaluations (MESHUI_ALERTS_INTERVAL_S)")
    window_s: int
    metric: str
    unit: str
    op: str
    fire: float
    recover: float
    times: list[int] = Field(description="each evaluation's time, epoch seconds; its value is "
                                         "over the window_s seconds before it")
    targets: list[PreviewTarget] = Field(description="by name, at most 20")
    truncated: int = Field(description="matching targets left out")
