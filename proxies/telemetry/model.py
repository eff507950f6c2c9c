"""Plain values the sidecar hands to telemetry: who we are, and one finished span."""

from __future__ import annotations

from dataclasses import dataclass

AttributeValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Resource:
    """The OTLP resource every export carries (see docs/telemetry.md, "Resource")."""

    service: str
    version: str
    instance_id: str


@dataclass(frozen=True, slots=True)
class SpanData:
    """One finished span of a sampled request, as plain values (encoded only at export)."""

    trace_id: bytes  # 16 bytes
    span_id: bytes  # 8 bytes
    parent_span_id: bytes | None
    name: str
    kind: str  # "server" | "client"
    start_ns: int
    end_ns: int
    attributes: dict[str, AttributeValue]
    error: bool
    # (time_unix_nano, name, attributes): what happened during the request (a retry, an
    # instance skipped because ejected, a fault injected, ...), exported as OTLP span events.
    events: tuple[tuple[int, str, dict[str, AttributeValue]], ...] = ()
