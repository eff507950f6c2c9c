"""Sidecar telemetry: per-request metrics and sampled spans, exported as OTLP/HTTP protobuf.

The request path calls ``Telemetry.record_request`` (and ``record_span`` when sampled);
everything else happens in one export task on the same event loop. docs/telemetry.md
describes what is exported. Also here: W3C trace context (``tracecontext``) and the
histogram bucket layout the sidecar emits (``histogram``, which the collector imports).
The data path records into this package; it imports nothing of the data path.
"""

from __future__ import annotations

from proxies.telemetry.model import Resource, SpanData
from proxies.telemetry.pipeline import Telemetry

__all__ = ["Resource", "SpanData", "Telemetry"]
