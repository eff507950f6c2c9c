"""A rule's fields checked together, and a rule as the evaluator steps it. Pure.

The API's schema (``meshui.alerts.schemas.RuleIn``) checks each field's type and range;
``check`` adds what needs several fields at once and the metric's own bounds, raising
``RuleProblem`` naming the field at fault:

- ``target`` is one of the shapes of ``meshui.alerts.targets``; a version's series has no
  policy events, so an event metric on a version is refused;
- ``op``, ``fire`` are required, except for ``no_data`` (its value is 1 without data, 0
  with: it defaults to ``op ">"``, ``fire 0.5``, ``recover 0.5``);
- ``recover`` defaults to ``fire`` (no hysteresis); with ``>`` it must be at most ``fire``
  (the alert recovers below it), with ``<`` at least ``fire``;
- both thresholds within the metric's range (``metrics.BOUNDS``: an error rate is a ratio,
  so 5 % is 0.05);
- ``labels``: at most ``MAX_LABELS``, names as Prometheus labels (``[A-Za-z_][A-Za-z0-9_]*``,
  not ``__``-prefixed) except those a notification sets from the rule itself
  (``RESERVED_LABELS``), values printable text up to ``LABEL_VALUE_MAX`` characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from meshui.alerts import metrics, targets
from meshui.alerts.states import Condition
from meshui.alerts.targets import Target, TargetProblem

MAX_LABELS = 20
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
LABEL_VALUE_MAX = 256
# Labels a notification derives from the rule and its target (Alertmanager's alertname).
RESERVED_LABELS = frozenset({"alertname", "severity", *targets.FIELDS})
MAX_CONTACT_POINTS = 20
NO_DATA_DEFAULT = 0.5


class RuleProblem(ValueError):
    """A rule that cannot be saved; ``field`` names the field at fault (``target.source``)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule as the evaluator and the backtest use it."""

    id: int
    name: str
    target: Target
    metric: str
    window_s: int
    condition: Condition
    severity: str = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    updated_at: datetime | None = None


def _threshold(metric: str, name: str, value: float) -> None:
    bounds = metrics.BOUNDS[metric]
    if value < bounds.low or (bounds.high is not None and value > bounds.high):
        span = f"{bounds.low:g}..{bounds.high:g}" if bounds.high is not None else f">= {bounds.low:g}"
        hint = f" ({bounds.hint})" if bounds.hint else ""
        raise RuleProblem(name, f"{name} of {metric} must be {span}{hint}, got {value:g}")


def check_labels(labels: Mapping[str, Any]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise RuleProblem("labels", f"labels: at most {MAX_LABELS}, got {len(labels)}")
    for name, value in labels.items():
        shown = str(name)[:40]
        if not isinstance(name, str) or not LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise RuleProblem(f"labels.{shown}", f"label name {shown!r} must be letters, digits "
                              "and '_' (not starting with a digit or '__'), at most 64")
        if name in RESERVED_LABELS:
            raise RuleProblem(f"labels.{shown}", f"label {shown!r} is set from the rule itself; "
                              f"reserved: {', '.join(sorted(RESERVED_LABELS))}")
        if not isinstance(value, str) or len(value) > LABEL_VALUE_MAX or not value.isprintable():
            raise RuleProblem(f"labels.{shown}", f"label {shown!r}: the value must be printable "
                              f"text of at most {LABEL_VALUE_MAX} characters")
    return dict(labels)


def check(data: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's fields checked together and completed (defaults filled in).

    ``data`` has the schema's fields, types already checked; raises ``RuleProblem``.
    """
    try:
        target = targets.parse(data.get("target"))
    except TargetProblem as exc:
        raise RuleProblem(exc.field, str(exc)) from None
    metric = data["metric"]
    if metric in metrics.EVENT_METRICS and not target.has_events:
        raise RuleProblem("metric", f"metric {metric}: a version records no policy events; "
                          "alert on its service or edge instead")
    if metric == metrics.CERT_EXPIRY and target.kind not in ("service", "instance"):
        raise RuleProblem("metric", f"metric {metric}: certificates belong to proxies; alert on "
                          "a service (its first certificate to expire) or an instance")
    op, fire, recover = data.get("op"), data.get("fire"), data.get("recover")
    if metric == metrics.NO_DATA:
        op = op or ">"
        if op != ">":
            raise RuleProblem("op", "op of no_data must be '>' (its value is 1 without data)")
        fire = NO_DATA_DEFAULT if fire is None else fire
        recover = fire if recover is None else recover
        if not 0 <= fire < 1 or not 0 < recover <= fire:
            raise RuleProblem("fire", "no_data is 1 without data and 0 with: give 0 <= fire < 1 "
                              "and 0 < recover <= fire, or neither (0.5)")
    else:
        if op is None:
            raise RuleProblem("op", f"op is required for metric {metric}: '>' or '<'")
        if fire is None:
            raise RuleProblem("fire", f"fire is required for metric {metric}")
        recover = fire if recover is None else recover
        _threshold(metric, "fire", fire)
        _threshold(metric, "recover", recover)
    if op == ">" and recover > fire:
        raise RuleProblem("recover", f"recover ({recover:g}) must be at most fire ({fire:g}) "
                          "when op is '>': the alert recovers once below it")
    if op == "<" and recover < fire:
        raise RuleProblem("recover", f"recover ({recover:g}) must be at least fire ({fire:g}) "
                          "when op is '<': the alert recovers once above it")
    contact_points = list(dict.fromkeys(data.get("contact_points") or ()))
    if len(contact_points) > MAX_CONTACT_POINTS:
        raise RuleProblem("contact_points", f"contact_points: at most {MAX_CONTACT_POINTS}")
    return {
        "name": data["name"], "target": target.as_json(), "metric": metric,
        "window_s": data["window_s"], "op": op, "fire": float(fire), "recover": float(recover),
        "for_s": data.get("for_s") or 0, "keep_firing_s": data.get("keep_firing_s") or 0,
        "severity": data.get("severity") or "warning",
        "labels": check_labels(data.get("labels") or {}), "contact_points": contact_points,
    }


def rule_of(row: Any) -> Rule:
    """The evaluator's rule from an ``AlertRule`` row (its fields were checked on save)."""
    return Rule(
        id=row.pk, name=row.name, target=targets.parse(row.target), metric=row.metric,
        window_s=row.window_s,
        condition=Condition(row.op, row.fire, row.recover, row.for_s, row.keep_firing_s),
        severity=row.severity, labels=dict(row.labels or {}), updated_at=row.updated_at)


def summary(fields: Mapping[str, Any]) -> str:
    """One line saying what a rule does, for the audit log."""
    target = targets.parse(fields["target"])
    recover_op = "<" if fields["op"] == ">" else ">"
    text = (f"{fields['metric']} of {target.label()} over {fields['window_s']} s "
            f"{fields['op']} {fields['fire']:g} (recovers {recover_op} {fields['recover']:g})")
    if fields.get("for_s"):
        text += f" for {fields['for_s']} s"
    if fields.get("keep_firing_s"):
        text += f", keeps firing {fields['keep_firing_s']} s"
    return f"{text}, {fields.get('severity', 'warning')}"
