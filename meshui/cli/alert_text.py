"""How meshctl shows alerts: the vocabulary, values with their units, rows. Pure.

The vocabulary is the API's (docs/alerts.md), copied because meshctl imports nothing of
the web app; ``tests/cli/test_alert_text.py`` fails when it and ``meshui.alerts`` (the
metrics, their units, the states, the severities) disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from meshui.cli import stat
from meshui.cli.terminal import first_line, relative, span

STATES = ("Normal", "Pending", "Firing", "Recovering", "NoData", "Error")
FIRING = frozenset({"Firing", "Recovering"})
SEVERITIES = ("critical", "warning", "info")
OPS = (">", "<")
TRAFFIC_METRICS = ("error_rate", "p50_ms", "p95_ms", "p99_ms", "rps")
EVENT_METRICS = ("retries", "ejections", "overflows", "timeouts", "faults", "rate_limited",
                 "retry_budget_exhausted", "mtls", "denied", "audit_denied")
NO_DATA = "no_data"
CERT_EXPIRY = "cert_expiry_h"
METRICS = (*TRAFFIC_METRICS, *EVENT_METRICS, NO_DATA, CERT_EXPIRY)

MAX_NOTE = 300  # an Error's detail names the failure; a longer one is cut
ALERT_HEADERS = ["RULE", "NAME", "TARGET", "STATE", "SINCE", "VALUE", "SEVERITY"]
RULE_HEADERS = ["ID", "NAME", "TARGET", "CONDITION", "SEVERITY", "LABELS"]
HISTORY_HEADERS = ["AT", "TARGET", "FROM", "TO", "VALUE", "DETAIL"]
PREVIEW_HEADERS = ["TARGET", "STATE", "FROM", "FOR", "WORST"]


def unit_of(metric: str) -> str:
    """The unit of a metric's value, as ``meshui.alerts.metrics.UNITS`` names it."""
    if metric == "error_rate":
        return "ratio"
    if metric == NO_DATA:
        return "boolean"
    if metric == CERT_EXPIRY:
        return "h"
    if metric == "rps":
        return "req/s"
    if metric.endswith("_ms"):
        return "ms"
    return "events/s"


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def value_text(metric: str, value: Any) -> str:
    """A value with its unit: ``23.14%`` (an error rate is a ratio), ``180ms``, ``3.5 req/s``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    unit = unit_of(metric)
    if unit == "ratio":
        return f"{100 * value:.4g}%"
    if unit == "ms":
        return stat.milliseconds(value)
    if unit == "boolean":
        return f"{value:g}"
    return f"{_number(value)} {unit}"


def target_text(target: Any) -> str:
    """How a target reads: ``payments``, ``payments v2``, ``checkout -> payments (v2)``,
    ``instance payments-v1-0`` (as ``meshui.alerts.targets.Target.label``)."""
    if not isinstance(target, Mapping):
        return "?"
    if target.get("source") is not None or target.get("target") is not None:
        edge = f"{target.get('source', '?')} -> {target.get('target', '?')}"
        return f"{edge} ({target['version']})" if target.get("version") else edge
    if target.get("instance") is not None:
        service = f" of {target['service']}" if target.get("service") else ""
        return f"instance {target['instance']}{service}"
    if target.get("version"):
        return f"{target.get('service', '?')} {target['version']}"
    return str(target.get("service", "?"))


def condition_text(rule: Mapping[str, Any], of: str | None = None) -> str:
    """``error_rate > 20% over 1m (recovers < 5%) for 10s``: when the rule fires (``of``:
    the target, named after the metric)."""
    metric = str(rule.get("metric", "?"))
    op = str(rule.get("op", "?"))
    text = (f"{metric}{' of ' + of if of else ''} {op} {value_text(metric, rule.get('fire'))} "
            f"over {span(rule.get('window_s') or 0)}")
    if rule.get("recover") != rule.get("fire"):
        back = "<" if op == ">" else ">"
        text += f" (recovers {back} {value_text(metric, rule.get('recover'))})"
    if rule.get("for_s"):
        text += f" for {span(rule['for_s'])}"
    if rule.get("keep_firing_s"):
        text += f", keeps firing {span(rule['keep_firing_s'])}"
    return text


def labels_text(labels: Any) -> str:
    if not isinstance(labels, Mapping) or not labels:
        return "-"
    return ",".join(f"{name}={value}" for name, value in sorted(labels.items()))


def rule_line(rule: Mapping[str, Any], verb: str = "") -> str:
    """``rule 3 'payments errors' created: error_rate of checkout -> payments > 20% over 1m
    (recovers < 5%) for 10s, critical``."""
    head = f"rule {rule.get('id', '?')} {str(rule.get('name', '?'))!r}" + (
        f" {verb}" if verb else "")
    return (f"{head}: {condition_text(rule, target_text(rule.get('target')))}, "
            f"{rule.get('severity', 'warning')}")


def rule_rows(rules: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    return [[str(r.get("id", "?")), str(r.get("name", "?")), target_text(r.get("target")),
             condition_text(r), str(r.get("severity", "?")), labels_text(r.get("labels"))]
            for r in rules]


def state_text(alert: Mapping[str, Any]) -> str:
    state = str(alert.get("state", "?"))
    return f"{state} (silenced)" if alert.get("silenced") else state


def alert_rows(alerts: Sequence[Mapping[str, Any]], now: datetime) -> list[list[str]]:
    """One row per rule and target, in the API's order (by rule name, then target)."""
    return [[str(a.get("rule", "?")), str(a.get("name", "?")), target_text(a.get("target")),
             state_text(a), relative(a.get("since"), now),
             value_text(str(a.get("metric", "")), a.get("value")), str(a.get("severity", "?"))]
            for a in alerts]


def alert_notes(alerts: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why each alert in Error is (the data source's failure), as proxy-status's NACKs."""
    return [f"{a.get('name', '?')} on {target_text(a.get('target'))}: Error: "
            f"{str(a.get('detail') or 'no detail')[:MAX_NOTE]}"
            for a in alerts if a.get("state") == "Error"]


def alert_summary(alerts: Sequence[Mapping[str, Any]], interval_s: Any) -> str:
    """``5 alerts: 1 Firing, 1 Pending, 3 Normal; evaluated every 10 s``."""
    counts: dict[str, int] = {}
    for alert in alerts:
        counts[str(alert.get("state", "?"))] = counts.get(str(alert.get("state", "?")), 0) + 1
    order = [state for state in STATES if state in counts] + sorted(set(counts) - set(STATES))
    silenced = sum(1 for alert in alerts if alert.get("silenced"))
    text = (f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}: "
            + ", ".join(f"{counts[state]} {state}" for state in order))
    if silenced:
        text += f" ({silenced} silenced)"
    return text + (f"; evaluated every {interval_s} s" if interval_s else "")


def history_rows(transitions: Sequence[Mapping[str, Any]], metric: str, now: datetime
                 ) -> list[list[str]]:
    return [[relative(t.get("at"), now), target_text(t.get("target")),
             str(t.get("from_state", "?")), str(t.get("to_state", "?")),
             value_text(metric, t.get("value")), first_line(str(t.get("detail") or ""), 80)]
            for t in transitions]


def _started(period: Mapping[str, Any], now: datetime) -> str:
    start = period.get("start")
    if not isinstance(start, int | float):
        return "?"
    return f"{span(now.timestamp() - start)} ago"


def _worst(preview: Mapping[str, Any], values: Sequence[Any], start: Any, end: Any) -> Any:
    """The value furthest past the threshold in ``[start, end)``: the highest for ``>``,
    the lowest for ``<`` (None: no data throughout)."""
    if not isinstance(start, int | float) or not isinstance(end, int | float):
        return None
    inside = [value for time, value in zip(preview.get("times") or [], values, strict=False)
              if isinstance(value, int | float) and isinstance(time, int | float)
              and start <= time < end]
    if not inside:
        return None
    return min(inside) if preview.get("op") == "<" else max(inside)


def preview_rows(preview: Mapping[str, Any], now: datetime) -> list[list[str]]:
    """A row per period a target was not Normal over the hour: when it started, how long,
    and its worst value."""
    metric = str(preview.get("metric", ""))
    rows = []
    for line in preview.get("targets") or []:
        name = target_text(line.get("target"))
        for period in line.get("periods") or []:
            start, end = period.get("start"), period.get("end")
            lasted = span(end - start) if isinstance(start, int | float) and isinstance(
                end, int | float) else "?"
            rows.append([name, str(period.get("state", "?")), _started(period, now), lasted,
                         value_text(metric, _worst(preview, line.get("values") or [], start,
                                                   end))])
    return rows


def fired(line: Mapping[str, Any]) -> int:
    """How many times a target's preview started firing (Recovering -> Firing is the same)."""
    return sum(1 for t in line.get("transitions") or []
               if t.get("to_state") == "Firing" and t.get("from_state") not in FIRING)


def preview_summary(preview: Mapping[str, Any]) -> list[str]:
    """The targets that stayed Normal, then what the hour adds up to."""
    lines = []
    targets = preview.get("targets") or []
    metric = str(preview.get("metric", ""))
    for line in targets:
        if not line.get("periods"):
            values = [v for v in line.get("values") or [] if v is not None]
            now = value_text(metric, values[-1]) if values else "-"
            lines.append(f"{target_text(line.get('target'))}: Normal throughout (now {now})")
    firing = [line for line in targets if fired(line)]
    times = sum(fired(line) for line in firing)
    total = len(targets) + int(preview.get("truncated") or 0)
    lines.append(f"over the last hour the rule would have fired {times} time"
                 f"{'s' if times != 1 else ''} on {len(firing)} of {total} target"
                 f"{'s' if total != 1 else ''} (evaluated every {preview.get('step', '?')} s)")
    if preview.get("truncated"):
        lines.append(f"{preview['truncated']} more matching targets not shown (the API "
                     f"backtests the first 20 by name)")
    return lines
