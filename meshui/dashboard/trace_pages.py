"""What the trace pages read from the server: the search's bounds and the span events' words.

The search page (``/traces``) and the waterfall (``/traces/<trace_id>``) get these through
``json_script`` (docs/ui.md, "Traces"), never from a copy in their scripts. Pure: values in,
values out; the views pass them to the templates.

``SPAN_EVENTS`` names the span events a sidecar adds for its policy decisions (docs/sidecar.md,
"Tracing": ``Exchange.event`` in proxies/dataplane) and OpenTelemetry's ``exception``; the
waterfall draws each as a marker on its span, labelled from ``label`` with the event's own
attributes filled in. tests/meshui/test_trace_pages.py fails when the sidecar adds an event this
list does not name. Any other event is still drawn, under its own name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from collector.traceconnector import TraceStoreConfig
from collector.tracesearch import DEFAULT_RANGE_S, MAX_LIMIT

# The search page asks for more than the API's default of 20: a scatter of 20 dots says
# little about a latency distribution, and 100 summaries are ~30 KB.
PAGE_LIMIT = 100
# Relative ranges the form offers (seconds back from now); the last is the API's default.
RANGES: tuple[tuple[int, str], ...] = ((900, "last 15 min"), (DEFAULT_RANGE_S, "last hour"))
# How long a trace stays searchable unless the collector is configured otherwise.
TRACE_TTL_S = TraceStoreConfig().ttl_s
# Rows the waterfall draws at once: a trace may hold 10,000 spans (the store's cap,
# TraceStoreConfig.max_spans_per_trace); past this many the page offers "show more".
MAX_ROWS = 1000

Tone = Literal["policy", "bad"]


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """One kind of span event the waterfall knows: how it labels and colours it."""

    name: str  # the event's name on the span
    label: str  # the marker's words; ``{key}`` is replaced by that attribute's value
    description: str  # one sentence for the tooltip
    tone: Tone  # policy: the sidecar acted (amber); bad: a request was refused or broken (red)


SPAN_EVENTS: tuple[SpanEvent, ...] = (
    SpanEvent("retry", "retry #{attempt}", "The sidecar scheduled a retry after a retryable "
              "outcome ({reason}).", "policy"),
    SpanEvent("endpoint_skipped", "skipped {instance} ({reason})", "Outlier detection had "
              "ejected this instance, so the pick left it out.", "policy"),
    SpanEvent("ejected", "ejected {instance}", "This request's outcome ejected the instance "
              "from the load-balancing pool for {duration_s} s.", "policy"),
    SpanEvent("fault_injected", "fault injected ({kind})", "A route's fault injection "
              "delayed or aborted this request.", "bad"),
    SpanEvent("rate_limited", "rate-limited ({scope})", "A local rate limit answered 429; "
              "the caller may retry after {retry_after_s} s.", "bad"),
    SpanEvent("overflow", "overflow ({limit})", "A circuit-breaker limit refused the request "
              "or its retry.", "bad"),
    SpanEvent("retry_budget_exhausted", "retry budget exhausted", "The retry budget refused a "
              "retry: too many retries are in flight on this edge.", "bad"),
    SpanEvent("authorization.denied", "denied by {rule}", "The destination's authorization "
              "rules denied this request from {caller} (403, x-meshui-denied).", "bad"),
    SpanEvent("authorization.audit_denied", "would be denied ({caller})", "Let through, but "
              "the AUDIT rules on trial ({rules}) would deny it once enforced.", "policy"),
    SpanEvent("exception", "exception {exception.type}", "The application recorded an "
              "exception (OpenTelemetry semantic conventions).", "bad"),
)


class EventWords(TypedDict):
    label: str
    description: str
    tone: str


def event_words() -> dict[str, EventWords]:
    """``SPAN_EVENTS`` by name, as the waterfall's script reads them."""
    return {event.name: {"label": event.label, "description": event.description,
                         "tone": event.tone} for event in SPAN_EVENTS}


def search_page_settings() -> dict[str, Any]:
    """What traces.js reads: the limits, the ranges it offers, how long traces are kept."""
    return {"limit": PAGE_LIMIT, "max_limit": MAX_LIMIT, "default_range_s": DEFAULT_RANGE_S,
            "ranges": [{"seconds": seconds, "label": label} for seconds, label in RANGES],
            "ttl_s": TRACE_TTL_S, "ttl": ttl_label(TRACE_TTL_S)}


def trace_page_settings(trace_id: str, link: str | None) -> dict[str, Any]:
    """What waterfall.js reads: the trace to fetch, the external link, the events' words."""
    return {"trace_id": trace_id, "link": link, "max_rows": MAX_ROWS, "ttl_s": TRACE_TTL_S,
            "ttl": ttl_label(TRACE_TTL_S), "events": event_words()}


def ttl_label(seconds: int) -> str:
    """How long traces are kept, as a sentence says it: "1 h", "30 min", "2 days"."""
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day" if days == 1 else f"{days} days"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
