"""Latency heatmaps from the graph store: one series' histogram per column of ``step`` seconds.

The graph store (``collector.graphstore``) keeps, per wall-clock second, a latency histogram
per edge, per edge and version of its target, and per service served. A heatmap reads the
same per-second hashes as the graph over the same window and files one series' fields by
column instead of adding them all up, so its counts over the window are exactly the
graph's requests for that edge or service over that window (docs/api.md, "heatmap").

Columns are aligned to multiples of ``step`` in epoch seconds, so a live page adds a column
every ``step`` seconds instead of watching every column shift; the first and last columns
hold only the seconds of the window. Rows merge ``ROW_MERGE`` of the sidecar's exponential
buckets (``proxies.telemetry.histogram``, ~9% each) into one of a factor of sqrt(2), from
the lowest to the highest bucket any column has.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from collector.graphstore import SEP, key_for, validate_window, window_seconds
from proxies.telemetry import histogram

ROW_MERGE = 4  # sidecar buckets per heatmap row: 2 ** (4/8), a factor of sqrt(2) per row
DEFAULT_STEP = 10
MAX_STEP = 60


class ColumnJSON(TypedDict):
    start: int  # epoch seconds, a multiple of step
    requests: int
    errors: int
    counts: list[int]  # one per row of buckets_ms
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class HeatmapJSON(TypedDict):
    window: int
    step: int
    buckets_ms: list[float]  # each row's lower bound; a row ends where the next begins
    top_ms: float | None  # where the last row ends
    columns: list[ColumnJSON]
    exemplars: list[dict[str, Any]]


def edge_series(source: str, target: str, version: str | None = None) -> str:
    """The field prefix of an edge's requests (of one version of its target, if given)."""
    if version is None:
        return f"e{SEP}{source}{SEP}{target}{SEP}"
    return f"ev{SEP}{source}{SEP}{target}{SEP}{version}{SEP}"


def service_series(service: str) -> str:
    """The field prefix of the requests a service served."""
    return f"n{SEP}{service}{SEP}"


def validate_step(step: int, window: int) -> int:
    if not 1 <= step <= MAX_STEP:
        raise ValueError(f"step must be between 1 and {MAX_STEP} seconds, got {step}")
    if step > window:
        raise ValueError(f"step ({step} s) must not be longer than the window ({window} s)")
    return step


def _quantile(latency: Mapping[int, int], q: float) -> float | None:
    value = histogram.quantile(latency, q)
    return None if value is None else round(value, 3)


def build_heatmap(hashes: Iterable[Mapping[bytes | str, bytes | str]], seconds: list[int],
                  series: str, window: int, step: int) -> HeatmapJSON:
    """File ``series``' fields of each second's hash (in ``seconds`` order) into columns."""
    prefix = series.encode()
    per_column: dict[int, dict[str, Any]] = {}
    for second, fields in zip(seconds, hashes, strict=True):
        column = per_column.setdefault(second - second % step,
                                       {"requests": 0, "errors": 0, "latency": {}})
        for raw_field, raw_value in fields.items():
            name = raw_field if isinstance(raw_field, bytes) else raw_field.encode()
            if not name.startswith(prefix):
                continue
            try:
                value = int(raw_value)
            except ValueError:  # not written by a collector
                continue
            kind = name[len(prefix):].decode()
            if kind == "n":
                column["requests"] += value
            elif kind == "x":
                column["errors"] += value
            elif kind.startswith("h") and kind[1:].lstrip("-").isdigit():
                index = int(kind[1:])
                if histogram.MIN_INDEX <= index <= histogram.MAX_INDEX:
                    column["latency"][index] = column["latency"].get(index, 0) + value
    rows = sorted({index // ROW_MERGE for c in per_column.values() for index in c["latency"]})
    low, high = (rows[0], rows[-1]) if rows else (0, -1)
    columns: list[ColumnJSON] = []
    for start in sorted(per_column):
        column = per_column[start]
        counts = [0] * (high - low + 1)
        for index, count in column["latency"].items():
            counts[index // ROW_MERGE - low] += count
        columns.append({"start": start, "requests": column["requests"],
                        "errors": column["errors"], "counts": counts,
                        "p50_ms": _quantile(column["latency"], 0.50),
                        "p95_ms": _quantile(column["latency"], 0.95),
                        "p99_ms": _quantile(column["latency"], 0.99)})
    return {
        "window": window, "step": step,
        "buckets_ms": [round(histogram.lower_bound(row * ROW_MERGE), 4)
                       for row in range(low, high + 1)],
        "top_ms": round(histogram.lower_bound((high + 1) * ROW_MERGE), 4) if rows else None,
        "columns": columns,
        "exemplars": [],
    }


# One series' fields of each second's hash, filtered inside Redis: a second's hash holds every
# edge's and service's fields (~900 at 40 edges), and shipping all of them to file a few was
# most of a query's time (bench/heatmap_query.py). Chunked, so one call never blocks Redis
# (and the collectors' writes) for long.
SERIES_SCRIPT = """
local prefix, out = ARGV[1], {}
for i, key in ipairs(KEYS) do
  local fields, row = redis.call('HGETALL', key), {}
  for j = 1, #fields, 2 do
    if string.sub(fields[j], 1, #prefix) == prefix then
      row[#row + 1] = fields[j]
      row[#row + 1] = fields[j + 1]
    end
  end
  out[i] = row
end
return out
"""
KEYS_PER_CALL = 60  # ~15 ms of Redis time a call at 900 fields a hash


def _reads(window: int, step: int, now: float | None) -> list[int]:
    validate_step(step, validate_window(window))
    return window_seconds(window, time.time() if now is None else now)


def _queue(pipe: Any, series: str, seconds: list[int]) -> None:
    # EVAL with the script's text (400 bytes a call): the same on sync and async pipelines.
    for start in range(0, len(seconds), KEYS_PER_CALL):
        keys = [key_for(second) for second in seconds[start:start + KEYS_PER_CALL]]
        pipe.eval(SERIES_SCRIPT, len(keys), *keys, series)


def _hashes(replies: list[list[Any]]) -> list[dict[Any, Any]]:
    """The script's flat ``[field, value, ...]`` rows, one per second, as mappings."""
    return [dict(zip(row[::2], row[1::2], strict=True)) for chunk in replies for row in chunk]


def fetch_heatmap(redis_client: Any, series: str, window: int, step: int = DEFAULT_STEP,
                  now: float | None = None) -> HeatmapJSON:
    """Read a heatmap with a synchronous redis-py client."""
    seconds = _reads(window, step, now)
    pipe = redis_client.pipeline(transaction=False)
    _queue(pipe, series, seconds)
    return build_heatmap(_hashes(pipe.execute()), seconds, series, window, step)


async def afetch_heatmap(redis_client: Any, series: str, window: int, step: int = DEFAULT_STEP,
                         now: float | None = None) -> HeatmapJSON:
    """Read a heatmap with an asyncio redis-py client (the API)."""
    seconds = _reads(window, step, now)
    pipe = redis_client.pipeline(transaction=False)
    _queue(pipe, series, seconds)
    return build_heatmap(_hashes(await pipe.execute()), seconds, series, window, step)
