"""Golden metrics of one edge, service, version or instance over time, for line charts.

The same per-series keys as the heatmaps (``collector.seriesstore``), reduced per column of
``step`` seconds to rates, ratios and quantiles, in the manner of ``linkerd viz routes -o
wide``: the **effective** request and success rates are what the caller's application saw
(one per request, retries hidden), the **actual** ones what went over the wire (every try:
a request retried twice is three tries). A retry is sent only after a try failed, so

    tries = requests + retries        successful tries = successful requests

Policy events are counted per edge by the caller's (or, rate limits, the callee's) sidecar:
an edge's chart reads its own, a service's those of the edges into it (``rn``), an
instance's those its own sidecar counted (``ri``); a version's have none (``null``).
An edge's chart also has the latency its target's sidecar measured (``server_*``) and the
difference, the network and queueing between the two sidecars (``network_*``: the
difference of the quantiles, not the quantile of the differences, which no one measures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from collector import seriesstore
from collector.graphstore import SEP
from collector.heatmap import window_range
from proxies.telemetry import histogram
from proxies.telemetry.events import EDGE_EVENTS

EVENT_METRICS = tuple(event.key for event in EDGE_EVENTS)
LATENCY_METRICS = ("p50", "p95", "p99")
SERVED_METRICS = ("server_p50", "server_p99", "network_p50", "network_p99")
METRICS = ("rps", "error_rate", "success_rate", *LATENCY_METRICS, "actual_rps",
           "actual_success_rate", *EVENT_METRICS, *SERVED_METRICS)
DEFAULT_METRICS = ("rps", "actual_rps", "success_rate", "actual_success_rate",
                   *LATENCY_METRICS, "retries", "timeouts", "ejections", "rate_limited")
UNITS = {"rps": "req/s", "actual_rps": "req/s", "error_rate": "ratio", "success_rate": "ratio",
         "actual_success_rate": "ratio", **{name: "ms" for name in LATENCY_METRICS + SERVED_METRICS},
         **{name: "events/s" for name in EVENT_METRICS}}
_QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


class SeriesLineJSON(TypedDict):
    metric: str
    unit: str
    values: list[float | None]  # one per column; null: nothing to compute it from


class SeriesJSON(TypedDict):
    window: int
    step: int
    times: list[int]  # each column's start, epoch seconds, a multiple of step
    seconds: list[int]  # how many seconds of the window each column covers (rates are over them)
    series: list[SeriesLineJSON]


@dataclass(frozen=True, slots=True)
class Scope:
    """What a chart shows: the series of its requests, of its events, of its served side."""

    requests: str
    events: str | None
    served: str | None = None

    @classmethod
    def edge(cls, source: str, target: str, version: str | None = None) -> Scope:
        if version:
            return cls(f"ev{SEP}{source}{SEP}{target}{SEP}{version}{SEP}", None)
        return cls(f"e{SEP}{source}{SEP}{target}{SEP}", f"r{SEP}{source}{SEP}{target}{SEP}",
                   f"es{SEP}{source}{SEP}{target}{SEP}")

    @classmethod
    def service(cls, service: str, version: str | None = None, instance: str | None = None) -> Scope:
        if instance:
            return cls(f"i{SEP}{service}{SEP}{instance}{SEP}", f"ri{SEP}{service}{SEP}{instance}{SEP}")
        if version:
            return cls(f"nv{SEP}{service}{SEP}{version}{SEP}", None)
        return cls(f"n{SEP}{service}{SEP}", f"rn{SEP}{service}{SEP}")


def validate_metrics(raw: str | None) -> tuple[str, ...]:
    """``metric=rps,p99`` checked; empty or absent: the golden ones (DEFAULT_METRICS)."""
    if not raw:
        return DEFAULT_METRICS
    names = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric {unknown[0][:40]!r}; known: {', '.join(METRICS)}"
                         if unknown else "name at least one metric")
    return names


def plans(scope: Scope, seconds: range, step: int) -> list[seriesstore.ReadPlan]:
    """The reads of a chart: its requests, then its events and served side where it has them."""
    names = [scope.requests] + [name for name in (scope.events, scope.served) if name]
    return [seriesstore.plan_read(name, seconds[0], seconds[-1], step) for name in names]


def queue_reads(pipe: Any, read_plans: Sequence[seriesstore.ReadPlan]) -> None:
    for plan in read_plans:
        seriesstore.queue_reads(pipe, plan)


def split_replies(read_plans: Sequence[seriesstore.ReadPlan], replies: list[Any]
                  ) -> list[dict[int, dict[str, int]]]:
    """Counts by second of each plan, in order."""
    out, at = [], 0
    for plan in read_plans:
        n = len(plan.s1_keys) + len(plan.s10_keys)
        out.append(seriesstore.split_replies(plan, replies[at:at + n])[0])
        at += n
    return out


@dataclass(slots=True)
class _Column:
    requests: int = 0
    errors: int = 0
    latency: dict[int, int] = field(default_factory=dict)  # the caller's timing
    events: dict[str, int] = field(default_factory=dict)
    served: dict[int, int] = field(default_factory=dict)  # the target's timing (an edge's)


def _fold(per_column: dict[int, _Column], counts: Mapping[int, Mapping[str, int]], step: int,
          part: str) -> None:
    """Add one read's counts by second (``part``: requests, events, served) to the columns."""
    for second, fields in counts.items():
        column = per_column.get(second - second % step)
        if column is None:
            continue
        if part == "events":
            for kind, value in fields.items():
                if kind in EVENT_METRICS:
                    column.events[kind] = column.events.get(kind, 0) + value
            continue
        latency = column.latency if part == "requests" else column.served
        for kind, value in fields.items():
            if kind.startswith("h") and kind[1:].lstrip("-").isdigit():
                index = int(kind[1:])
                if histogram.MIN_INDEX <= index <= histogram.MAX_INDEX:
                    latency[index] = latency.get(index, 0) + value
            elif part == "requests" and kind == "n":
                column.requests += value
            elif part == "requests" and kind == "x":
                column.errors += value


def _quantile(latency: Mapping[int, int], q: float) -> float | None:
    value = histogram.quantile(latency, q) if latency else None
    return None if value is None else round(value, 3)


def _value(metric: str, column: _Column, seconds: int, scope: Scope) -> float | None:
    """One point; ``seconds`` is how much of the window the column covers (the first and last
    columns may cover less than a step: their rates are over what they cover)."""
    n, x = column.requests, column.errors
    retries = column.events.get("retries", 0)
    if metric == "rps":
        return round(n / seconds, 6)
    if metric == "error_rate":
        return round(x / n, 4) if n else None
    if metric == "success_rate":
        return round(1 - x / n, 4) if n else None
    if metric in _QUANTILES:
        return _quantile(column.latency, _QUANTILES[metric])
    if metric in ("actual_rps", "actual_success_rate"):
        if scope.events is None:  # no retry counts for this scope: the effective ones are all
            retries = 0
        if metric == "actual_rps":
            return round((n + retries) / seconds, 6)
        return round((n - x) / (n + retries), 4) if n + retries else None
    if metric in EVENT_METRICS:
        if scope.events is None:
            return None
        return round(column.events.get(metric, 0) / seconds, 6)
    if scope.served is None:  # server_* and network_*: an edge's only
        return None
    kind, _, quantile = metric.partition("_")
    q = _QUANTILES[quantile]
    served = _quantile(column.served, q)
    if kind == "server" or served is None:
        return served
    client = _quantile(column.latency, q)
    return None if client is None else round(max(client - served, 0.0), 3)


def build_series(scope: Scope, counts: Sequence[Mapping[int, Mapping[str, int]]], seconds: range,
                 step: int, metrics: Sequence[str]) -> SeriesJSON:
    """The chart's lines over ``seconds`` from ``split_replies`` of ``plans(scope, ...)``."""
    first, last = seconds[0], seconds[-1]
    starts = list(range(first - first % step, last + 1, step))
    per_column = {start: _Column() for start in starts}
    parts = ["requests"] + [part for part, name in (("events", scope.events),
                                                    ("served", scope.served)) if name]
    for part, part_counts in zip(parts, counts, strict=True):
        _fold(per_column, part_counts, step, part)
    covered = [min(start + step - 1, last) - max(start, first) + 1 for start in starts]
    return {
        "window": len(seconds), "step": step, "times": starts, "seconds": covered,
        "series": [{"metric": metric, "unit": UNITS[metric],
                    "values": [_value(metric, per_column[start], length, scope)
                               for start, length in zip(starts, covered, strict=True)]}
                   for metric in metrics],
    }


def fetch_series(redis_client: Any, scope: Scope, window: int, step: int,
                 metrics: Sequence[str] = DEFAULT_METRICS, now: float | None = None) -> SeriesJSON:
    """Read a chart with a synchronous redis-py client."""
    seconds = window_range(window, step, now)
    read_plans = plans(scope, seconds, step)
    pipe = redis_client.pipeline(transaction=False)
    queue_reads(pipe, read_plans)
    return build_series(scope, split_replies(read_plans, pipe.execute()), seconds, step, metrics)


async def afetch_series(redis_client: Any, scope: Scope, window: int, step: int,
                        metrics: Sequence[str] = DEFAULT_METRICS, now: float | None = None
                        ) -> SeriesJSON:
    """Read a chart with an asyncio redis-py client (the API)."""
    seconds = window_range(window, step, now)
    read_plans = plans(scope, seconds, step)
    pipe = redis_client.pipeline(transaction=False)
    queue_reads(pipe, read_plans)
    return build_series(scope, split_replies(read_plans, await pipe.execute()), seconds, step,
                        metrics)
