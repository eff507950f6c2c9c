"""Links from a trace in meshui to the same trace in a long-term backend (Grafana, Jaeger, ...).

The collector can forward every span to Tempo, Jaeger or another OTLP backend
(docs/collector.md, "Forwarding"); ``MESHUI_TRACE_LINK_TEMPLATE`` says where that backend
shows a trace, with ``{trace_id}`` where the id goes, e.g.
``http://jaeger:16686/trace/{trace_id}``. The template is checked once, at start-up
(settings), so a typo stops the process instead of making every link broken.

Pure functions plus one reader of the setting: the trace view calls ``trace_link``.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

PLACEHOLDER = "{trace_id}"
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
# A URL has none of these; one in the template is a paste gone wrong (a newline, a tab).
_NOT_IN_URL = re.compile(r"[\x00-\x20\x7f]")


def validate_template(template: str) -> str:
    """``template`` when usable; ValueError saying what is wrong otherwise."""
    if PLACEHOLDER not in template:
        raise ValueError(f"must contain {PLACEHOLDER}, got {template!r}")
    if _NOT_IN_URL.search(template):
        raise ValueError(f"must not contain spaces or control characters, got {template!r}")
    # Checked with the placeholder filled in, so its braces cannot pass for part of the host.
    parts = urlsplit(template.replace(PLACEHOLDER, "0" * 32))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL, got {template!r}")
    return template


def normalized_trace_id(trace_id: str) -> str | None:
    """The W3C form of a trace id (32 lower-case hex digits, not all zero), or None."""
    candidate = trace_id.strip().lower()
    if not _TRACE_ID.match(candidate) or candidate == "0" * 32:
        return None
    return candidate


def build_link(template: str, trace_id: str) -> str | None:
    """``template`` with every ``{trace_id}`` replaced by the URL-escaped id; None for a bad id.

    ``str.replace``, not ``str.format``: a Grafana Explore URL carries JSON whose own braces
    ``format`` would read as fields.
    """
    normalized = normalized_trace_id(trace_id)
    if normalized is None:
        return None
    return template.replace(PLACEHOLDER, quote(normalized, safe=""))


def trace_link(trace_id: str) -> str | None:
    """The backend's page for ``trace_id``, or None (no template configured, or a bad id)."""
    from django.conf import settings

    template: str = getattr(settings, "MESHUI_TRACE_LINK_TEMPLATE", "")
    if not template:
        return None
    return build_link(template, trace_id)
