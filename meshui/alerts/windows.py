"""Each target's counts over a rule's window, read from the graph store in Redis.

Two ways to read, one cycle using both (``meshui.alerts.evaluator``):

- **Short windows** (at most ``GRAPH_READ_MAX_S``): the graph's per-second hashes
  (``collector.graphstore``), every field of every series. The longest short window is read
  once, in one pipeline, newest second first, and added up as it goes; each shorter window
  is a snapshot of the running totals when its first second is reached. So a cycle of rules
  over 60 s, 120 s and 300 s costs one 300 s read, however many rules and targets: the
  cheapest when most of the graph is watched (a 60 s read of the demo's graph is ~4 ms,
  bench/RESULTS.md). Each window also says which series had data in it
  (``WindowTotals.index``): what a pattern on that window matches.
- **Long windows**: one series' own keys (``collector.seriesstore``, whole 10 s cells
  where they fit), through ``collector.series`` (``plans``, ``queue_reads``,
  ``split_replies``), every target's plans in one pipeline: an hour of one edge is a dozen
  small hashes, where an hour of the per-second hashes is ~6 s (bench/RESULTS.md, Heatmap
  query).

``collector.series.build_series`` is not used: it turns columns into values, and a rule's
value is over its whole window (a quantile over a window cannot be made from the
quantiles of its columns), so the counts are added up here and ``metrics.value_of``
computes the value once.

A window evaluated at second ``at`` is the ``window`` whole seconds before it,
``at - window .. at - 1``: the backtest reads the same seconds for each of its points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from collector import series as series_reads
from collector import seriesstore
from collector.graphstore import key_for
from collector.series import Scope
from meshui.alerts.metrics import Counts
from meshui.alerts.targets import SeriesIndex

# Windows up to this many seconds are read from the per-second graph hashes, longer ones
# from each target's own series keys (the crossover measured in bench/alert_eval.py).
GRAPH_READ_MAX_S = 300
# The least a cycle reads of the per-second hashes to know which series exist (patterns).
DISCOVERY_WINDOW_S = 60
CELL = seriesstore.CELL


def window_seconds(at: int, window: int) -> range:
    """The seconds a window evaluated at ``at`` covers: the ``window`` seconds before it."""
    return range(at - window, at)


def running_totals(hashes: Iterable[Mapping[Any, Any]], windows: Sequence[int]
                   ) -> dict[int, dict[Any, int]]:
    """Each window's field totals from per-second hashes given **newest first**.

    ``windows`` ascending; each total is the sum of the first ``window`` hashes.
    """
    totals: dict[Any, int] = {}
    total = totals.get
    out: dict[int, dict[Any, int]] = {}
    wanted = list(windows)
    at = 0
    for seen, fields in enumerate(hashes, 1):
        for name, raw in fields.items():
            try:
                value = int(raw)
            except ValueError:  # not written by a collector
                continue
            totals[name] = total(name, 0) + value
        while at < len(wanted) and wanted[at] == seen:
            out[wanted[at]] = dict(totals)
            at += 1
    for window in wanted[at:]:  # fewer hashes than the window: what there was
        out[window] = dict(totals)
    return out


@dataclass(slots=True)
class WindowTotals:
    """The graph store's counters added up over one window, by series."""

    window: int
    series: dict[str, dict[str, int]] = field(default_factory=dict)
    _index: SeriesIndex | None = None

    @property
    def index(self) -> SeriesIndex:
        """The series with data in this window: what a pattern matches."""
        if self._index is None:
            self._index = SeriesIndex(self.series)
        return self._index

    def counts(self, scope: Scope) -> Counts | None:
        """A scope's counts, or None when neither its requests nor its events are in it."""
        requests = self.series.get(scope.requests)
        events = self.series.get(scope.events) if scope.events else None
        if requests is None and events is None:
            return None
        counts = Counts()
        for kinds in (requests, events):
            if kinds:
                counts.add_all(kinds)
        return counts


class FieldSplitter:
    """``seriesstore.split_field`` of each distinct field name, once per cycle."""

    def __init__(self) -> None:
        self._cache: dict[Any, tuple[str, str] | None] = {}

    def by_series(self, totals: Mapping[Any, int]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        cache = self._cache
        for raw, value in totals.items():
            if raw in cache:
                split = cache[raw]
            else:
                split = cache[raw] = seriesstore.split_field(
                    raw.decode() if isinstance(raw, bytes) else raw)
            if split is not None and value:
                kinds = out.setdefault(split[0], {})
                kinds[split[1]] = kinds.get(split[1], 0) + value
        return out


def graph_windows(windows: Iterable[int]) -> list[int]:
    """The windows read from the per-second hashes (always the discovery window too)."""
    short = {window for window in windows if window <= GRAPH_READ_MAX_S}
    return sorted(short | {DISCOVERY_WINDOW_S})


def read_graph_windows(redis_client: Any, windows: Sequence[int], at: int
                       ) -> dict[int, WindowTotals]:
    """Every short window's totals (``windows`` ascending), all from one pipeline."""
    longest = windows[-1]
    pipe = redis_client.pipeline(transaction=False)
    for second in range(at - 1, at - longest - 1, -1):
        pipe.hgetall(key_for(second))
    totals = running_totals(pipe.execute(), windows)
    splitter = FieldSplitter()
    return {window: WindowTotals(window, splitter.by_series(totals[window])) for window in windows}


def _plan_scope(scope: Scope) -> Scope:
    return Scope(scope.requests, scope.events, None)  # no served side: no rule reads it


def read_series_windows(redis_client: Any, wanted: Iterable[tuple[Scope, int]], at: int
                        ) -> dict[tuple[Scope, int], Counts | None]:
    """Each (scope, window)'s counts from the series' own keys, all in one pipeline."""
    pairs = list(dict.fromkeys(wanted))
    if not pairs:
        return {}
    planned = []
    pipe = redis_client.pipeline(transaction=False)
    for scope, window in pairs:
        seconds = window_seconds(at, window)
        step = CELL if window % CELL == 0 else 1
        plans = series_reads.plans(_plan_scope(scope), seconds, step)
        series_reads.queue_reads(pipe, plans)
        planned.append(plans)
    replies = pipe.execute()
    out: dict[tuple[Scope, int], Counts | None] = {}
    offset = 0
    for (scope, window), plans in zip(pairs, planned, strict=True):
        used = sum(len(plan.s1_keys) + len(plan.s10_keys) for plan in plans)
        parts = series_reads.split_replies(plans, replies[offset:offset + used])
        offset += used
        counts, seen = Counts(), False
        for by_second in parts:
            for kinds in by_second.values():
                seen = True
                counts.add_all(kinds)
        out[(scope, window)] = counts if seen else None
    return out
