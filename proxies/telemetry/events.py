"""The edge events: what traffic policy did on an edge, the one list every layer reads.

A sidecar counts each event per edge and exports it as an OTLP delta sum named ``metric``
(docs/telemetry.md) and as a lifetime total on its admin port, Prometheus family
``prometheus`` (docs/sidecar.md). The collector maps ``metric`` back to ``key`` and adds it
up on the edge (``collector.sidecar_points``, ``collector.graphstore``); the API's ``Edge``
schema has one ``events`` field per ``key`` described by ``description``
(``meshui.dashboard.schemas``), and the dashboard's hover names it ``label``
(``meshui.dashboard.figure``). A new event is one line here, the sidecar code that counts
it, and its rows in the docs; tests/test_edge_events.py fails when a layer names an event
this list does not hold, or misses one it does.

Only proxies/ may hold this list: the sidecar never imports the collector or meshui
(the import-linter contracts in pyproject.toml), and both of them import the sidecar's
telemetry vocabulary anyway (``proxies.telemetry.histogram``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EdgeEvent:
    """One kind of traffic-policy event; every name here is a public contract."""

    key: str  # the edge's ``events`` key in the graph JSON and the API
    metric: str  # the OTLP metric a sidecar exports it as
    prometheus: str  # the admin port's Prometheus family of its lifetime total
    description: str  # one sentence: the OTLP description, the Prometheus HELP, the API's
    label: str  # the dashboard's words for it after a count: "3 budget exhausted"


RETRIES = EdgeEvent(
    "retries", "meshui.proxy.retries", "meshui_proxy_retries_total",
    "Retries sent after a retryable outcome.", "retries")
EJECTIONS = EdgeEvent(
    "ejections", "meshui.proxy.ejections", "meshui_proxy_ejections_total",
    "Instances ejected by outlier detection.", "ejections")
OVERFLOWS = EdgeEvent(
    "overflows", "meshui.proxy.overflows", "meshui_proxy_overflow_total",
    "Requests or retries failed fast by a circuit-breaker limit.", "overflows")
TIMEOUTS = EdgeEvent(
    "timeouts", "meshui.proxy.timeouts", "meshui_proxy_timeouts_total",
    "Timeouts that fired.", "timeouts")
FAULTS = EdgeEvent(
    "faults", "meshui.proxy.faults", "meshui_proxy_faults_total",
    "Faults injected (delays and aborts).", "faults injected")
RATE_LIMITED = EdgeEvent(
    "rate_limited", "meshui.proxy.rate_limited", "meshui_proxy_rate_limited_total",
    "Requests answered 429 by a local rate limit.", "rate limited")
RETRY_BUDGET_EXHAUSTED = EdgeEvent(
    "retry_budget_exhausted", "meshui.proxy.retry_budget.exhausted",
    "meshui_proxy_retry_budget_exhausted_total",
    "Retries refused because the retry budget was spent.", "budget exhausted")
MTLS = EdgeEvent(
    "mtls", "meshui.proxy.mtls.requests", "meshui_proxy_mtls_requests_total",
    "Requests that arrived over mutual TLS from the caller's sidecar (its identity verified).",
    "over mTLS")

DENIED = EdgeEvent(
    "denied", "meshui.proxy.authz.denied", "meshui_proxy_authz_denied_total",
    "Requests denied by the destination's authorization rules (403, x-meshui-denied).", "denied")
AUDIT_DENIED = EdgeEvent(
    "audit_denied", "meshui.proxy.authz.audit_denied", "meshui_proxy_authz_audit_denied_total",
    "Requests let through that the destination's AUDIT rules would deny once enforced.",
    "would be denied")

#: Every edge event, in the order an edge's ``events`` object lists them (docs/api.md).
EDGE_EVENTS: tuple[EdgeEvent, ...] = (
    RETRIES, EJECTIONS, OVERFLOWS, TIMEOUTS, FAULTS, RATE_LIMITED, RETRY_BUDGET_EXHAUSTED, MTLS,
    DENIED, AUDIT_DENIED,
)
#: The ``events`` keys, in that order.
EVENT_KEYS: tuple[str, ...] = tuple(event.key for event in EDGE_EVENTS)
#: OTLP metric name -> its event.
BY_METRIC: dict[str, EdgeEvent] = {event.metric: event for event in EDGE_EVENTS}
