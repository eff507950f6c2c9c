"""What the alert pages' scripts read from the server (docs/ui.md, "Alerts"). Pure.

The pages hold no list of their own: the metrics (with their units, how a form shows them
and sensible thresholds), the target shapes, the states and their colours, the severities
and the poll interval all come from here, built from the modules the API checks rules with
(``metrics``, ``targets``, ``states``, ``models.SEVERITIES``), and reach the scripts through
``json_script``. ``prefill`` turns an "Alert on this" link's query string into a new rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshui.alerts import metrics, targets
from meshui.alerts.models import SEVERITIES
from meshui.alerts.rules import NO_DATA_DEFAULT
from meshui.alerts.states import FIRING_STATES, OPS, State
from proxies.telemetry.events import EDGE_EVENTS

# How often the alert pages and the graph's badges ask GET /api/v1/alerts. The evaluator
# runs every MESHUI_ALERTS_INTERVAL_S (10 s): a change shows within a few seconds of it.
POLL_MS = 3000
# How long an editor waits after the last keystroke before it asks for the backtest.
PREVIEW_DEBOUNCE_MS = 400
HISTORY_PER_PAGE = 50

# How a form shows a metric's thresholds: a ratio as a percent (sent as the ratio).
_SHOWN = {"ratio": ("%", 100.0), "ms": ("ms", 1.0), "req/s": ("req/s", 1.0),
          "events/s": ("/s", 1.0), "boolean": ("", 1.0), "h": ("h", 1.0)}
_LABELS = {"error_rate": "Error rate", "p50_ms": "Latency p50", "p95_ms": "Latency p95",
           "p99_ms": "Latency p99", "rps": "Request rate", metrics.NO_DATA: "No data (traffic stopped)",
           metrics.CERT_EXPIRY: "Certificate expiry (hours left)",
           **{event.key: f"Policy events: {event.label}" for event in EDGE_EVENTS}}
# What the editor says under the metric (the API's own hint speaks in its units).
_FORM_HINTS = {
    "error_rate": "Errors / requests (5xx or failed), in percent here; the API takes the ratio "
                  "(5 % is 0.05).",
    "p50_ms": "The median latency of the window's requests, as the sidecars timed them.",
    "p95_ms": "The 95th percentile latency of the window's requests.",
    "p99_ms": "The 99th percentile latency of the window's requests.",
    "rps": "Requests per second over the window; below a threshold: traffic dropped.",
    metrics.NO_DATA: "Fires while the target has had no request in the window: traffic stopped.",
    metrics.CERT_EXPIRY: "Hours until the first certificate of the target's live proxies expires "
                         "(meshui's CA renews at 2/3 of the life: a 24 h one with 8 h left). "
                         "Read at each evaluation; the window and backtest do not apply.",
}
EVENT_HINT = "Events per second over the window, as the sidecars counted them."
# A new rule's thresholds per metric (the API's units): error_rate > 5 %, recovers under 2 %.
_DEFAULTS: dict[str, tuple[str, float, float]] = {
    "error_rate": (">", 0.05, 0.02), "p50_ms": (">", 200.0, 150.0),
    "p95_ms": (">", 500.0, 400.0), "p99_ms": (">", 1000.0, 800.0), "rps": ("<", 1.0, 2.0),
    metrics.NO_DATA: (">", NO_DATA_DEFAULT, NO_DATA_DEFAULT),
    metrics.CERT_EXPIRY: ("<", 4.0, 6.0),  # renewal 4 h late on a 24 h certificate
    **{key: (">", 1.0, 0.5) for key in metrics.EVENT_METRICS},
}
TARGET_KINDS: dict[str, str] = {"service": "Service", "version": "Version of a service",
                                "edge": "Edge (calls from source to target)",
                                "edge_version": "Edge, calls one version answered",
                                "instance": "Instance"}
# The instance's service may be left out: the evaluator finds it in the data.
OPTIONAL_FIELDS = {"instance": ("service",)}
_STATE_CLASS = {State.NORMAL: "normal", State.PENDING: "pending", State.FIRING: "firing",
                State.RECOVERING: "recovering", State.NO_DATA: "nodata", State.ERROR: "error"}
STATE_HELP = {
    State.NORMAL: "not breaching",
    State.PENDING: "breaching, waiting out the pending period (for) before it fires",
    State.FIRING: "firing",
    State.RECOVERING: "recovered, still firing for keep firing",
    State.NO_DATA: "no request in the window to compute the metric from",
    State.ERROR: "the data source could not be read",
}
# The label that holds a rule's name on its alerts (meshui.alerts.notify.labels): what a
# "Silence this" link matches, with the target's fields.
ALERTNAME = "alertname"
# The order a list shows alerts in: those that need a person first.
ATTENTION = (State.FIRING, State.RECOVERING, State.PENDING, State.ERROR, State.NO_DATA,
             State.NORMAL)
NEW_RULE = {"window_s": 60, "for_s": 60, "keep_firing_s": 0, "severity": "warning",
            "labels": {}, "contact_points": []}


def metric_json(name: str) -> dict[str, Any]:
    unit = metrics.UNITS[name]
    shown, scale = _SHOWN[unit]
    bounds = metrics.BOUNDS[name]
    op, fire, recover = _DEFAULTS[name]
    return {"name": name, "label": _LABELS[name], "unit": unit, "shown_unit": shown,
            "scale": scale, "low": bounds.low, "high": bounds.high,
            "hint": _FORM_HINTS.get(name, EVENT_HINT),
            "events": name in metrics.EVENT_METRICS, "thresholds": name != metrics.NO_DATA,
            "default": {"op": op, "fire": fire, "recover": recover}}


def vocabulary() -> dict[str, Any]:
    """Every word and number the alert pages and the graph's badges use."""
    return {
        "metrics": [metric_json(name) for name in metrics.METRICS],
        "states": [{"name": state.value, "class": _STATE_CLASS[state], "help": STATE_HELP[state],
                    "firing": state in FIRING_STATES, "rank": ATTENTION.index(state)}
                   for state in State],
        "severities": list(SEVERITIES),
        "ops": [{"op": op, "label": "above" if op == ">" else "below"} for op in OPS],
        "targets": [{"kind": kind, "label": label, "fields": list(targets.SHAPES[kind]),
                     "optional": list(OPTIONAL_FIELDS.get(kind, ())),
                     "events": targets.SERIES[kind][1] is not None}
                    for kind, label in TARGET_KINDS.items()],
        "wildcard": targets.WILDCARD, "alertname": ALERTNAME,
        "poll_ms": POLL_MS, "debounce_ms": PREVIEW_DEBOUNCE_MS,
        "history_per_page": HISTORY_PER_PAGE,
    }


def graph_settings(can_edit: bool, firing_color: str, pending_color: str) -> dict[str, Any]:
    """What the graph page's alert badges need: which states show in which colour, how
    often to ask, and whether to offer "Alert on this" (operators only)."""
    return {"can_edit": can_edit, "poll_ms": POLL_MS,
            "firing": sorted(FIRING_STATES), "pending": [State.PENDING.value],
            "colors": {"firing": firing_color, "pending": pending_color}}


def _given(query: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name in targets.FIELDS
            if (value := (query.get(name) or "").strip())}


def prefill(query: Mapping[str, str]) -> dict[str, Any]:
    """A new rule from an "Alert on this" link: ``?service=payments``,
    ``?service=payments&version=v2``, ``?source=checkout&target=payments`` (``&version=``),
    ``?instance=<proxy id>`` (``&service=``), optionally ``&metric=``. A query that names
    no target shape gives an empty service target to fill in; the API checks the rest."""
    given = _given(query)
    metric = query.get("metric") or "error_rate"
    if metric not in metrics.METRICS:
        metric = "error_rate"
    op, fire, recover = _DEFAULTS[metric]
    rule: dict[str, Any] = {**NEW_RULE, "metric": metric, "op": op, "fire": fire,
                            "recover": recover}
    try:
        target = targets.parse(given)
    except targets.TargetProblem:
        rule.update(name="", target={"service": given.get("service", "")}, kind="service")
        return rule
    rule.update(name=f"{target.label()} {_LABELS[metric].lower()}", target=target.as_json(),
                kind=target.kind)
    return rule


def shown_value(metric: str, value: float) -> str:
    """A threshold as the form shows it: ``5 %``, ``500 ms``, ``1 req/s``."""
    shown, scale = _SHOWN[metrics.UNITS[metric]]
    return f"{round(value * scale, 9):g} {shown}".strip()


def _seconds(value: int) -> str:
    minutes, seconds = divmod(value, 60)
    if not minutes:
        return f"{seconds} s"
    return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"


def condition_text(rule: Mapping[str, Any]) -> str:
    """What makes a rule fire and recover, in a sentence: "error rate over 60 s above 5 %,
    for 1 min; recovers below 2 %"."""
    metric, window = rule["metric"], rule["window_s"]
    if metric == metrics.NO_DATA:
        text = f"no request in {window} s"
    else:
        above = rule["op"] == ">"
        text = (f"{_LABELS[metric].lower()} over {window} s {'above' if above else 'below'} "
                f"{shown_value(metric, rule['fire'])}")
    if rule.get("for_s"):
        text += f", for {_seconds(rule['for_s'])}"
    if metric != metrics.NO_DATA and rule["recover"] != rule["fire"]:
        text += (f"; recovers {'below' if rule['op'] == '>' else 'above'} "
                 f"{shown_value(metric, rule['recover'])}")
    if rule.get("keep_firing_s"):
        text += f"; keeps firing {_seconds(rule['keep_firing_s'])}"
    return text


def kind_of(target: Mapping[str, Any]) -> str:
    """A saved rule's target kind, for the editor's select."""
    return targets.parse(target).kind
