"""Latency heatmaps of one series: its histogram per column of ``step`` seconds, with exemplars.

The graph writer files every series' increments under keys of that series alone
(``collector.seriesstore``), in the same at-most-once batch as the graph's per-second
hashes, so a heatmap's counts over a window are exactly the graph's requests for that edge,
service, version or instance over that window (docs/api.md, "heatmap").

Columns are aligned to multiples of ``step`` in epoch seconds, so a live page adds a column
every ``step`` seconds instead of watching every column shift; the first and last columns
hold only the seconds of the window. Rows merge ``ROW_MERGE`` of the sidecar's exponential
buckets (``proxies.telemetry.histogram``, ~9% each) into one of a factor of sqrt(2), from
the lowest to the highest bucket any column has. Each cell (column, row) lists at most one
exemplar: an error's if any, else the slowest.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from collector import seriesstore
from collector.graphstore import SEP, validate_window
from collector.records import Exemplar
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


class ExemplarJSON(TypedDict):
    column: int  # index into columns
    bucket: int  # index into buckets_ms (the row)
    trace_id: str
    span_id: str
    value_ms: float
    time: float
    error: bool


class HeatmapJSON(TypedDict):
    window: int
    step: int
    buckets_ms: list[float]  # each row's lower bound; a row ends where the next begins
    top_ms: float | None  # where the last row ends
    columns: list[ColumnJSON]
    exemplars: list[ExemplarJSON]


def edge_series(source: str, target: str, version: str | None = None) -> str:
    """The series of an edge's requests (of one version of its target, if given)."""
    if version is None:
        return f"e{SEP}{source}{SEP}{target}{SEP}"
    return f"ev{SEP}{source}{SEP}{target}{SEP}{version}{SEP}"


def edge_served_series(source: str, target: str) -> str:
    """The series of an edge's requests as its target's side timed them."""
    return f"es{SEP}{source}{SEP}{target}{SEP}"


def service_series(service: str, version: str | None = None, instance: str | None = None) -> str:
    """The series of the requests a service served (by one version or instance, if given)."""
    if instance:
        return f"i{SEP}{service}{SEP}{instance}{SEP}"
    if version:
        return f"nv{SEP}{service}{SEP}{version}{SEP}"
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


def _rank(exemplar: Exemplar) -> tuple[bool, float]:
    return exemplar.error, exemplar.value_ms


def build_heatmap(counts: Mapping[int, Mapping[str, int]], found: Iterable[tuple[int, int, Exemplar]],
                  seconds: range, step: int) -> HeatmapJSON:
    """Columns over ``seconds`` of a series' counts by second (``seriesstore.per_second``)
    and its exemplars (``seriesstore.exemplars``); every column of the window, empty or not."""
    first, last = seconds[0], seconds[-1]
    per_column: dict[int, dict[str, Any]] = {
        start: {"requests": 0, "errors": 0, "latency": {}}
        for start in range(first - first % step, last + 1, step)}
    for second, fields in counts.items():
        column = per_column.get(second - second % step)
        if column is None:  # outside the window: the plan reads only inside it
            continue
        latency = column["latency"]
        for kind, value in fields.items():
            if kind == "n":
                column["requests"] += value
            elif kind == "x":
                column["errors"] += value
            elif kind.startswith("h") and kind[1:].lstrip("-").isdigit():
                index = int(kind[1:])
                if histogram.MIN_INDEX <= index <= histogram.MAX_INDEX:
                    latency[index] = latency.get(index, 0) + value
    rows = sorted({index // ROW_MERGE for c in per_column.values() for index in c["latency"]})
    low, high = (rows[0], rows[-1]) if rows else (0, -1)
    starts = sorted(per_column)
    columns: list[ColumnJSON] = []
    for start in starts:
        column = per_column[start]
        cells = [0] * (high - low + 1)
        for index, count in column["latency"].items():
            cells[index // ROW_MERGE - low] += count
        columns.append({"start": start, "requests": column["requests"],
                        "errors": column["errors"], "counts": cells,
                        "p50_ms": _quantile(column["latency"], 0.50),
                        "p95_ms": _quantile(column["latency"], 0.95),
                        "p99_ms": _quantile(column["latency"], 0.99)})
    index_of = {start: i for i, start in enumerate(starts)}
    best: dict[tuple[int, int], Exemplar] = {}
    for second, bucket, exemplar in found:
        row = bucket // ROW_MERGE - low
        column_index = _exemplar_column(columns, index_of, second, row, exemplar, step) \
            if 0 <= row <= high - low else None
        # An exemplar outside every counted cell (its counts fell outside the window, or a
        # foreign write) would point at nothing on the page.
        if column_index is None:
            continue
        cell = (column_index, row)
        if cell not in best or _rank(exemplar) > _rank(best[cell]):
            best[cell] = exemplar
    return {
        "window": len(seconds), "step": step,
        "buckets_ms": [round(histogram.lower_bound(row * ROW_MERGE), 4)
                       for row in range(low, high + 1)],
        "top_ms": round(histogram.lower_bound((high + 1) * ROW_MERGE), 4) if rows else None,
        "columns": columns,
        "exemplars": [
            {"column": column_index, "bucket": row, "trace_id": exemplar.trace_id,
             "span_id": exemplar.span_id, "value_ms": exemplar.value_ms, "time": exemplar.time,
             "error": exemplar.error}
            for (column_index, row), exemplar in sorted(best.items())
        ],
    }


def _exemplar_column(columns: list[ColumnJSON], index_of: Mapping[int, int], second: int,
                     row: int, exemplar: Exemplar, step: int) -> int | None:
    """The column of an exemplar kept for the 10 s cell starting at ``second``: with columns
    narrower than a cell, or not aligned to cells, the cell spans several, so it goes to one
    that counted a request in its row, the one holding its end time if that one did."""
    if step % seriesstore.CELL == 0:
        return index_of.get(second - second % step)
    first = second - second % step
    candidates = [index_of[start] for start in range(first, second + seriesstore.CELL, step)
                  if start in index_of and columns[index_of[start]]["counts"][row]]
    if not candidates:
        return None
    at = int(exemplar.time)
    own = index_of.get(at - at % step)
    return own if own in candidates else candidates[-1]


def window_range(window: int, step: int, now: float | None = None) -> range:
    """The seconds a heatmap of ``window`` seconds ending now covers (checked)."""
    validate_step(step, validate_window(window))
    last = int(time.time() if now is None else now)
    return range(last - window + 1, last + 1)


def read_plan(series: str, seconds: range, step: int) -> seriesstore.ReadPlan:
    return seriesstore.plan_read(series, seconds[0], seconds[-1], step)


def fetch_heatmap(redis_client: Any, series: str, window: int, step: int = DEFAULT_STEP,
                  now: float | None = None) -> HeatmapJSON:
    """Read a heatmap with a synchronous redis-py client."""
    seconds = window_range(window, step, now)
    plan = read_plan(series, seconds, step)
    pipe = redis_client.pipeline(transaction=False)
    seriesstore.queue_reads(pipe, plan, with_exemplars=True)
    counts, found = seriesstore.split_replies(plan, pipe.execute(), with_exemplars=True)
    return build_heatmap(counts, found, seconds, step)


async def afetch_heatmap(redis_client: Any, series: str, window: int, step: int = DEFAULT_STEP,
                         now: float | None = None) -> HeatmapJSON:
    """Read a heatmap with an asyncio redis-py client (the API)."""
    seconds = window_range(window, step, now)
    plan = read_plan(series, seconds, step)
    pipe = redis_client.pipeline(transaction=False)
    seriesstore.queue_reads(pipe, plan, with_exemplars=True)
    counts, found = seriesstore.split_replies(plan, await pipe.execute(), with_exemplars=True)
    return build_heatmap(counts, found, seconds, step)
