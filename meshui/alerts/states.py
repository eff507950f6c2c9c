"""The alert state machine: a reading and the clock in, the new state (and its transition) out.

Per rule and concrete target, Grafana's alert instance lifecycle
(https://grafana.com/docs/grafana/latest/alerting/fundamentals/alert-rule-evaluation/),
with a separate recovery threshold (Grafana's "custom recovery threshold"):

    Normal --breach--> Pending --breach for for_s--> Firing --recovered--> Recovering
       ^                  |                          ^  |                     |
       +---- no breach ---+                          |  +-- keep_firing_s = 0 -> Normal
       +------------------------------------ recovered for keep_firing_s ----+
                                                     +------ not recovered ---+

- A **breach** is ``value > fire`` (op ``>``) or ``value < fire`` (op ``<``); a value
  **recovered** is ``value < recover`` (op ``>``) or ``value > recover`` (op ``<``). With
  ``recover`` below ``fire`` this is hysteresis: a rule that fires above 5 % with recover
  2 % stays firing at 4 % and recovers only under 2 %. ``recover == fire`` is none.
- **Pending** starts at the first breach and lasts while every evaluation breaches; once
  ``for_s`` has passed since it started the alert fires. A value that does not breach
  (even one between ``recover`` and ``fire``) ends it: back to Normal. ``for_s = 0`` fires
  at the first breach.
- **Recovering** (``keep_firing_s > 0``): the alert still fires (``firing()``) while the
  value stays recovered for ``keep_firing_s``; a value that is not recovered sends it back
  to Firing and the wait starts over. Then Normal: the alert is resolved.
- **NoData**: the target has nothing in the window to compute the metric from (no request
  for a ratio or a quantile); **Error**: the data source could not be read. Both are
  entered from any state at once (no pending period). When data comes back the rule starts
  over as from Normal: a breach is Pending (or Firing with ``for_s = 0``).

Every state change is a ``Transition`` carrying the value that caused it and a sentence
saying why, for the history and for the notifications. The evaluator and the backtest
(``meshui.alerts.backtest``) both step through this module; nothing here reads a clock or
does I/O: ``now`` is the evaluation's time in epoch seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum


class State(StrEnum):
    """The state of one rule on one concrete target (the API's ``state``)."""

    NORMAL = "Normal"
    PENDING = "Pending"
    FIRING = "Firing"
    RECOVERING = "Recovering"
    NO_DATA = "NoData"
    ERROR = "Error"


#: The states in which an alert fires: what notifications send as firing, the graph badges.
FIRING_STATES = frozenset({State.FIRING, State.RECOVERING})
OPS = (">", "<")


@dataclass(frozen=True, slots=True)
class Condition:
    """When a rule fires and when it recovers (the rule's ``op``, thresholds and periods)."""

    op: str
    fire: float
    recover: float
    for_s: float = 0.0
    keep_firing_s: float = 0.0

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)}, got {self.op!r}")
        if self.op == ">" and self.recover > self.fire:
            raise ValueError(f"recover ({self.recover:g}) must be at most fire ({self.fire:g}) "
                             "when op is '>'")
        if self.op == "<" and self.recover < self.fire:
            raise ValueError(f"recover ({self.recover:g}) must be at least fire ({self.fire:g}) "
                             "when op is '<'")
        if self.for_s < 0 or self.keep_firing_s < 0:
            raise ValueError("for_s and keep_firing_s must not be negative")

    def breaches(self, value: float) -> bool:
        return value > self.fire if self.op == ">" else value < self.fire

    def recovered(self, value: float) -> bool:
        return value < self.recover if self.op == ">" else value > self.recover

    @property
    def recover_op(self) -> str:
        return "<" if self.op == ">" else ">"


@dataclass(frozen=True, slots=True)
class Reading:
    """What one evaluation found for a target: a value, no data (None), or an error."""

    value: float | None
    error: str | None = None

    @classmethod
    def failed(cls, detail: str) -> Reading:
        return cls(None, detail)


NO_DATA = Reading(None)


@dataclass(frozen=True, slots=True)
class Status:
    """Where one rule stands on one target: its state since when, and the last value."""

    state: State
    since: float
    value: float | None = None
    detail: str = ""

    @property
    def firing(self) -> bool:
        return self.state in FIRING_STATES


def initial(now: float) -> Status:
    """A target seen for the first time: Normal from now."""
    return Status(State.NORMAL, now)


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change: from, to, when, the value that caused it and why."""

    old: State
    new: State
    at: float
    value: float | None
    detail: str


def _number(value: float) -> str:
    return f"{value:.6g}"


def _next(condition: Condition, status: Status, value: float, now: float) -> tuple[State, str]:
    """The state after a reading with a value, and why (an empty reason: unchanged)."""
    shown, fire, recover = _number(value), _number(condition.fire), _number(condition.recover)
    breach = f"{shown} {condition.op} {fire}"
    state = status.state
    if state in (State.NORMAL, State.NO_DATA, State.ERROR):
        if not condition.breaches(value):
            return State.NORMAL, f"{shown} does not breach {condition.op} {fire}"
        if condition.for_s > 0:
            return State.PENDING, f"{breach}; fires if it holds for {condition.for_s:g} s"
        return State.FIRING, breach
    if state == State.PENDING:
        if not condition.breaches(value):
            return State.NORMAL, f"{shown} no longer {condition.op} {fire} before {condition.for_s:g} s"
        if now - status.since >= condition.for_s:
            return State.FIRING, f"{breach} for {now - status.since:g} s"
        return State.PENDING, ""
    if state == State.FIRING:
        if not condition.recovered(value):
            return State.FIRING, ""
        reason = f"{shown} {condition.recover_op} {recover} (recover)"
        if condition.keep_firing_s > 0:
            return State.RECOVERING, f"{reason}; keeps firing for {condition.keep_firing_s:g} s"
        return State.NORMAL, f"{reason}: resolved"
    # Recovering
    if not condition.recovered(value):
        return State.FIRING, f"{shown} is not {condition.recover_op} {recover} (recover) any more"
    if now - status.since >= condition.keep_firing_s:
        return State.NORMAL, f"{shown} {condition.recover_op} {recover} (recover) for " \
                             f"{now - status.since:g} s: resolved"
    return State.RECOVERING, ""


def step(condition: Condition, status: Status, reading: Reading, now: float,
         no_data_detail: str = "no data in the window") -> tuple[Status, Transition | None]:
    """One evaluation: the new status, and the transition when the state changed."""
    if reading.error is not None:
        new, detail = State.ERROR, reading.error
    elif reading.value is None:
        new, detail = State.NO_DATA, no_data_detail
    else:
        new, detail = _next(condition, status, reading.value, now)
    if new == status.state:
        kept = status.detail if new not in (State.ERROR, State.NO_DATA) else detail
        return replace(status, value=reading.value, detail=kept), None
    changed = Status(new, now, reading.value, detail)
    return changed, Transition(status.state, new, now, reading.value, detail)


def resolve(status: Status, now: float, detail: str) -> Transition | None:
    """A target that went away (a pattern no longer matches it): Normal, if it was not."""
    if status.state == State.NORMAL:
        return None
    return Transition(status.state, State.NORMAL, now, None, detail)


def replay(condition: Condition, readings: Iterable[tuple[float, Reading]]
           ) -> tuple[list[Status], list[Transition]]:
    """The backtest: the status after each reading, from Normal at the first one."""
    statuses: list[Status] = []
    transitions: list[Transition] = []
    status: Status | None = None
    for now, reading in readings:
        status, transition = step(condition, status or initial(now), reading, now)
        statuses.append(status)
        if transition is not None:
            transitions.append(transition)
    return statuses, transitions


def periods(times: Sequence[float], statuses: Sequence[Status], step_s: float
            ) -> list[tuple[State, float, float]]:
    """Runs of one non-Normal state: (state, first time, end), each ending a step after its
    last evaluation (what a chart shades)."""
    runs: list[tuple[State, float, float]] = []
    for at, status in zip(times, statuses, strict=True):
        if status.state == State.NORMAL:
            continue
        if runs and runs[-1][0] == status.state and runs[-1][2] == at:
            runs[-1] = (status.state, runs[-1][1], at + step_s)
        else:
            runs.append((status.state, at, at + step_s))
    return runs
