"""What a rule can measure, and its value from a target's counts over a window. Pure.

The one list of alert metrics (the API's ``metric`` enum, the docs' table, the evaluator
and the backtest read it here):

- ``error_rate``: errors / requests (a ratio 0..1, 5xx or failed, as the graph's);
- ``p50_ms``, ``p95_ms``, ``p99_ms``: latency quantiles of the requests (the sidecar's
  histogram, ``proxies.telemetry.histogram``);
- ``rps``: requests per second over the window;
- the policy events of ``proxies.telemetry.events`` (``retries``, ``timeouts``,
  ``ejections``, ``overflows``, ``rate_limited``, ...): events per second over the window,
  as ``/api/v1/series`` charts them;
- ``no_data``: 1 when the target had no request in the window, else 0;
- ``cert_expiry_h``: hours until the certificate of the target's live proxies that expires
  first does (a service, or one instance); read from meshui's CA's records at each
  evaluation, not from traffic, so it has no window and no backtest.

A target has **no data** (the value is None: the NoData state) when it had no request in
the window; for an event metric, no request and no event either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proxies.telemetry import histogram
from proxies.telemetry.events import EVENT_KEYS

TRAFFIC_METRICS = ("error_rate", "p50_ms", "p95_ms", "p99_ms", "rps")
EVENT_METRICS = EVENT_KEYS
NO_DATA = "no_data"
CERT_EXPIRY = "cert_expiry_h"
METRICS: tuple[str, ...] = (*TRAFFIC_METRICS, *EVENT_METRICS, NO_DATA, CERT_EXPIRY)
UNITS: dict[str, str] = {"error_rate": "ratio", "rps": "req/s", NO_DATA: "boolean", CERT_EXPIRY: "h",
                         **{name: "ms" for name in ("p50_ms", "p95_ms", "p99_ms")},
                         **{name: "events/s" for name in EVENT_METRICS}}
QUANTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}


@dataclass(slots=True)
class Counts:
    """A target's counts over a window: its requests, errors, latency buckets and events."""

    requests: int = 0
    errors: int = 0
    latency: dict[int, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, value: int) -> None:
        """Add one counter of the graph store (``n``, ``x``, ``h<bucket>`` or an event)."""
        if kind == "n":
            self.requests += value
        elif kind == "x":
            self.errors += value
        elif kind in EVENT_METRICS:
            self.events[kind] = self.events.get(kind, 0) + value
        elif kind.startswith("h") and kind[1:].lstrip("-").isdigit():
            index = int(kind[1:])
            if histogram.MIN_INDEX <= index <= histogram.MAX_INDEX:  # else no bound is finite
                self.latency[index] = self.latency.get(index, 0) + value

    def add_all(self, kinds: Mapping[str, int]) -> None:
        for kind, value in kinds.items():
            self.add(kind, value)

    def merge(self, other: Counts, sign: int = 1) -> None:
        """Add (or with ``sign=-1`` take away) another window's counts: a sliding window."""
        self.requests += sign * other.requests
        self.errors += sign * other.errors
        _merge(self.latency, other.latency, sign)
        _merge(self.events, other.events, sign)


def _merge(mine: dict[Any, int], theirs: Mapping[Any, int], sign: int) -> None:
    for key, value in theirs.items():
        left = mine.get(key, 0) + sign * value
        if left:
            mine[key] = left
        else:
            mine.pop(key, None)


def value_of(metric: str, counts: Counts | None, window_s: int) -> float | None:
    """The metric over ``window_s`` seconds of ``counts``; None: no data (NoData)."""
    if metric == CERT_EXPIRY:
        return None  # not from traffic: the evaluator reads the certificates themselves
    requests = counts.requests if counts is not None else 0
    if metric == NO_DATA:
        return 0.0 if requests else 1.0
    if counts is None:
        return None
    if metric in EVENT_METRICS:
        if not requests and not any(counts.events.values()):
            return None
        return round(counts.events.get(metric, 0) / window_s, 4)
    if not requests:
        return None
    if metric == "error_rate":
        return round(min(counts.errors / requests, 1.0), 4)
    if metric == "rps":
        return round(requests / window_s, 4)
    quantile = histogram.quantile(counts.latency, QUANTILES[metric]) if counts.latency else None
    return None if quantile is None else round(quantile, 3)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The values a threshold of a metric may take (the API refuses others, naming why)."""

    low: float
    high: float | None
    hint: str = ""


BOUNDS: dict[str, Bounds] = {
    "error_rate": Bounds(0.0, 1.0, "a ratio: 0.05 is 5 %"),
    NO_DATA: Bounds(0.0, 1.0, "1 while the target has no data, else 0"),
    CERT_EXPIRY: Bounds(0.0, None, "hours left: a 24 h certificate is renewed with 8 h left"),
    **{name: Bounds(0.0, None) for name in METRICS if name not in ("error_rate", NO_DATA, CERT_EXPIRY)},
}
