"""The service page's editors: every field it edits, its default and what it does.

One list, read by the template (labels, tooltips, inputs), by static/policy/service.js
(through ``json_script``: kinds, bounds, defaults) and by the tests. Each default is read
from the schema's dataclasses (``proxies.policy.schema``), never written here; each text is
the "meaning" column of docs/policy.md's tables. A field's ``path`` is its dotted place in a
service's policy (``outlier_detection.consecutive_5xx``), the suffix of the ``field`` an API
error names (``services.catalog.outlier_detection.consecutive_5xx``), so an error lands next
to its control.

Faults live on routes in the schema; the page's fault editor writes them on one catch-all
route, ``FAULT_ROUTE``, kept last, so they apply to every request no earlier route takes.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, Literal, TypedDict

from proxies.policy.schema import (
    LOAD_BALANCERS,
    RETRY_ON_CONDITIONS,
    AbortFault,
    CircuitBreaker,
    DelayFault,
    OutlierDetection,
    PeakEwma,
    Retries,
    RetryBudget,
    ServicePolicy,
    Timeouts,
)

Kind = Literal["int", "number", "choice", "flag", "conditions", "statuses"]
FAULT_ROUTE = "fault-injection"


class FieldJSON(TypedDict):
    path: str
    label: str
    help: str
    kind: Kind
    default: Any
    unit: str
    min: float | None
    max: float | None
    nullable: bool
    choices: list[str]
    clears: str | None


@dataclass(frozen=True, slots=True)
class EditorField:
    path: str
    label: str
    help: str  # docs/policy.md's meaning of the field: the control's tooltip
    kind: Kind
    default: Any  # from the schema's dataclass
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    # Empty box: the key is removed (the default applies again); for an optional object's
    # required field, the whole object (``clears``) is removed instead.
    nullable: bool = False
    choices: tuple[str, ...] = ()
    clears: str | None = None
    default_label: str | None = None  # when the default is not a value ("rate, rounded up")

    @property
    def control_id(self) -> str:
        return "f-" + self.path.replace(".", "-").replace("_", "-")

    @property
    def default_text(self) -> str:
        """The default as the hint under the control writes it."""
        value = self.default
        if self.default_label is not None:
            return self.default_label
        if value is None:
            return "off"
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, (list, tuple, frozenset, set)):
            return ", ".join(str(v) for v in sorted(value)) or "none"
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        space = "" if self.unit in ("%", "/s") else " "
        return f"{value}{space + self.unit if self.unit else ''}"

    def page_json(self) -> FieldJSON:
        default = self.default
        if isinstance(default, frozenset):
            default = sorted(default)
        return {"path": self.path, "label": self.label, "help": self.help, "kind": self.kind,
                "default": default, "unit": self.unit, "min": self.minimum,
                "max": self.maximum, "nullable": self.nullable, "choices": list(self.choices),
                "clears": self.clears}


@dataclass(frozen=True, slots=True)
class Section:
    key: str  # the template's card for it
    title: str
    fields: tuple[EditorField, ...]


def _d(cls: type, name: str) -> Any:
    """The schema's default of ``cls.name`` (None for a field the schema requires)."""
    spec = {f.name: f for f in fields(cls)}[name]
    if spec.default is not MISSING:
        return spec.default
    if spec.default_factory is not MISSING:
        return spec.default_factory()
    return None


CB, OD, RT, TO = CircuitBreaker, OutlierDetection, Retries, Timeouts

SECTIONS: tuple[Section, ...] = (
    Section("circuit_breaker", "Connection pool limits", (
        EditorField("circuit_breaker.max_connections", "Max connections",
                    "Upstream connections open at once.", "int", _d(CB, "max_connections"),
                    minimum=1),
        EditorField("circuit_breaker.max_pending_requests", "Max pending requests",
                    "Requests waiting for a connection.", "int",
                    _d(CB, "max_pending_requests"), minimum=0),
        EditorField("circuit_breaker.max_requests", "Max requests", "Requests in flight.",
                    "int", _d(CB, "max_requests"), minimum=1),
        EditorField("circuit_breaker.max_retries", "Max retries", "Retries in flight.", "int",
                    _d(CB, "max_retries"), minimum=0),
    )),
    Section("outlier_detection", "Outlier detection", (
        EditorField("outlier_detection.consecutive_5xx", "Consecutive 5xx",
                    "Eject an instance after this many 5xx in a row. Connect failures and "
                    "resets count as 5xx. Empty: the default.", "int",
                    _d(OD, "consecutive_5xx"), minimum=1, nullable=True),
        EditorField("outlier_detection.consecutive_gateway_errors",
                    "Consecutive gateway errors",
                    "Eject after this many 502/503/504 (or connect failures) in a row. "
                    "Empty: off.", "int", _d(OD, "consecutive_gateway_errors"), minimum=1,
                    nullable=True),
        EditorField("outlier_detection.interval_s", "Interval",
                    "How often the sweep returns instances whose ejection has run out.",
                    "number", _d(OD, "interval_s"), "s", minimum=0),
        EditorField("outlier_detection.base_ejection_s", "Base ejection time",
                    "Ejection time is base_ejection_s × times ejected...", "number",
                    _d(OD, "base_ejection_s"), "s", minimum=0),
        EditorField("outlier_detection.max_ejection_s", "Max ejection time",
                    "...capped at this.", "number", _d(OD, "max_ejection_s"), "s", minimum=0),
        EditorField("outlier_detection.max_ejection_percent", "Max ejection",
                    "At most this percent of the instances are ejected at once, but one "
                    "instance can always be ejected.", "number",
                    _d(OD, "max_ejection_percent"), "%", 0, 100),
        EditorField("outlier_detection.panic_threshold_percent", "Panic threshold",
                    "When fewer than this percent of the instances are healthy, balance "
                    "across all of them, ejected included.", "number",
                    _d(OD, "panic_threshold_percent"), "%", 0, 100),
    )),
    Section("retries", "Retries", (
        EditorField("retries.attempts", "Attempts",
                    "Retries after the first try (so up to 3 tries). 0 turns retries off.",
                    "int", _d(RT, "attempts"), minimum=0),
        EditorField("retries.retry_on", "Retry on", "What is worth a retry.", "conditions",
                    _d(RT, "retry_on"), choices=tuple(sorted(RETRY_ON_CONDITIONS))),
        EditorField("retries.statuses", "Also retry statuses",
                    "Further response statuses to retry, e.g. 429 (comma separated).",
                    "statuses", _d(RT, "statuses")),
        EditorField("retries.per_try_timeout_ms", "Per-try timeout",
                    "Overrides timeouts.per_try_ms when set. Empty: not set.", "number",
                    _d(RT, "per_try_timeout_ms"), "ms", minimum=0, nullable=True,
                    default_label="not set"),
        EditorField("retries.backoff_base_ms", "Backoff base",
                    "Base of the exponential backoff.", "number", _d(RT, "backoff_base_ms"),
                    "ms", minimum=0),
        EditorField("retries.backoff_max_ms", "Backoff max",
                    "Cap of the backoff (at least the base).", "number",
                    _d(RT, "backoff_max_ms"), "ms", minimum=0),
        EditorField("retries.budget.percent", "Budget",
                    "Retries may add at most this percent of the requests...", "number",
                    _d(RetryBudget, "percent"), "%", 0, 100),
        EditorField("retries.budget.min_per_second", "Budget floor",
                    "...but this many retries per second are always allowed...", "number",
                    _d(RetryBudget, "min_per_second"), "/s", minimum=0),
        EditorField("retries.budget.window_s", "Budget window",
                    "...counted over this window.", "number", _d(RetryBudget, "window_s"), "s",
                    minimum=0),
        EditorField("retries.retry_non_idempotent", "Retry POST and PATCH",
                    "Allow retrying POST and PATCH requests that have a body.", "flag",
                    _d(RT, "retry_non_idempotent")),
    )),
    Section("timeouts", "Timeouts", (
        EditorField("timeouts.connect_ms", "Connect",
                    "Opening a TCP connection to an instance.", "number",
                    _d(TO, "connect_ms"), "ms", minimum=0),
        EditorField("timeouts.request_ms", "Request",
                    "The whole request, all tries and backoff included. Empty: the default.",
                    "number", _d(TO, "request_ms"), "ms", minimum=0, nullable=True),
        EditorField("timeouts.per_try_ms", "Per try",
                    "One try. When it expires and retries allow, the next try goes to "
                    "another instance. Empty: no limit.", "number", _d(TO, "per_try_ms"), "ms",
                    minimum=0, nullable=True, default_label="no limit"),
        EditorField("timeouts.idle_s", "Idle",
                    "A connection, upstream or client, with no traffic for this long is "
                    "closed. Empty: the default.", "number", _d(TO, "idle_s"), "s", minimum=0,
                    nullable=True),
    )),
    Section("fault", "Fault injection", (
        EditorField("fault.delay.fixed_ms", "Delay",
                    "Hold the request this long before sending it upstream. Empty: no delay.",
                    "number", None, "ms", minimum=0, nullable=True, clears="fault.delay",
                    default_label="no delay"),
        EditorField("fault.delay.percent", "Delayed share",
                    "Share of the requests that are delayed.", "number",
                    _d(DelayFault, "percent"), "%", 0, 100, nullable=True),
        EditorField("fault.abort.status", "Abort with status",
                    "Answer with this status and do not send the request upstream. "
                    "Empty: no abort.", "int", None, minimum=200, maximum=599, nullable=True,
                    clears="fault.abort", default_label="no abort"),
        EditorField("fault.abort.percent", "Aborted share",
                    "Share of the requests that are aborted.", "number",
                    _d(AbortFault, "percent"), "%", 0, 100, nullable=True),
    )),
    Section("rate_limit", "Rate limits", (
        EditorField("rate_limit.total.requests_per_second", "Total rate",
                    "One bucket shared by every caller. Empty: no limit.", "number", None,
                    "/s", minimum=0, nullable=True, clears="rate_limit.total",
                    default_label="no limit"),
        EditorField("rate_limit.total.burst", "Total burst",
                    "Bucket size: how many requests can go at once after a quiet spell "
                    "(default: the rate rounded up).", "number", None, minimum=1,
                    nullable=True, default_label="the rate, rounded up"),
        EditorField("rate_limit.per_source.requests_per_second", "Per calling service",
                    "One bucket per calling service (by x-meshui-source). Empty: no limit.",
                    "number", None, "/s", minimum=0, nullable=True,
                    clears="rate_limit.per_source", default_label="no limit"),
        EditorField("rate_limit.per_source.burst", "Per-service burst",
                    "Bucket size of each calling service's bucket (default: the rate "
                    "rounded up).", "number", None, minimum=1, nullable=True,
                    default_label="the rate, rounded up"),
    )),
    Section("load_balancer", "Load balancer", (
        EditorField("load_balancer", "Algorithm",
                    "How an instance is picked among the eligible instances of the chosen "
                    "version: peak_ewma (latency-aware), least_request (power of two "
                    "choices) or round_robin.", "choice", _d(ServicePolicy, "load_balancer"),
                    choices=LOAD_BALANCERS),
        EditorField("peak_ewma.default_rtt_ms", "Peak EWMA start RTT",
                    "The RTT estimate an instance starts with before any response.", "number",
                    _d(PeakEwma, "default_rtt_ms"), "ms", minimum=0),
        EditorField("peak_ewma.decay_s", "Peak EWMA decay",
                    "Time constant of the RTT moving average.", "number",
                    _d(PeakEwma, "decay_s"), "s", minimum=0),
    )),
)

SPLIT_HELP = ("Weighted routing between versions (an instance's version label); the weights "
              "sum to 100. No split: every version, balanced together.")
ROUTES_HELP = ("Ordered match rules, tried before the split: the first route whose every "
               "condition holds (path prefix, method, all headers) decides.")
BY_SECTION = {section.key: section for section in SECTIONS}
FIELDS: tuple[EditorField, ...] = tuple(f for section in SECTIONS for f in section.fields)


def display(field: EditorField, value: Any) -> str:
    """``value`` as the text of ``field``'s input ('' for none: the default applies)."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, (list, tuple, frozenset, set)):
        return ", ".join(str(v) for v in sorted(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def cards(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per section, its title and rows of (field, value, input text) for the template."""
    return {section.key: {"title": section.title, "rows": [
        {"field": f, "value": values.get(f.path), "text": display(f, values.get(f.path)),
         "on": set(values.get(f.path) or ()) if f.kind == "conditions" else None}
        for f in section.fields]} for section in SECTIONS}


def page_json() -> list[FieldJSON]:
    return [f.page_json() for f in FIELDS]
