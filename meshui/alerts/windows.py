"""Each target's counts over a rule's window, read from the graph store in Redis.

Two ways to read, one cycle using both (``meshui.alerts.evaluator``):

- **Short windows** (at most ``GRAPH_READ_MAX_S``, here): the graph's per-second hashes
  (``collector.graphstore``), every field of every series, in one pipeline, added up
  newest second first; each window is a snapshot of the running totals when its first
  second is reached. So a cycle of rules over 60 s, 120 s and 300 s costs one 300 s read,
  however many rules and targets: the cheapest when most of the graph is watched. Settled
  10 s chunks come from the worker's ``WindowCache`` instead, so a 300 s window reads its
  last 10-20 seconds (and a few where a window starts inside a chunk), not 300. Each window
  also says which series had data in it (``WindowTotals.index``): what a pattern on that
  window matches.
- **Long windows**: each target's own series keys, whole 10 s cells
  (``meshui.alerts.series_windows``).

``collector.series.build_series`` is not used: it turns columns into values, and a rule's
value is over its whole window (a quantile over a window cannot be made from the
quantiles of its columns), so the counts are added up here and ``metrics.value_of``
computes the value once.

A window evaluated at second ``at`` is the ``window`` whole seconds before it,
``at - window .. at - 1``; a long window ends at the last whole 10 s cell
(``evaluated_seconds``). The backtest reads the same seconds for each of its points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from collector import seriesstore
from collector.graphstore import key_for
from collector.series import Scope
from meshui.alerts.metrics import Counts
from meshui.alerts.targets import SeriesIndex
from meshui.alerts.window_cache import Totals, WindowCache

# Windows up to this many seconds are read from the per-second graph hashes, longer ones
# from each target's own series keys (the crossover measured in bench/alert_eval.py).
GRAPH_READ_MAX_S = 300
# The least a cycle reads of the per-second hashes to know which series exist (patterns).
DISCOVERY_WINDOW_S = 60
CELL = seriesstore.CELL


def add_into(totals: dict[Any, int], fields: Mapping[Any, Any]) -> None:
    """Add a hash's counters (bytes or text values, as Redis sent them) to ``totals``."""
    total = totals.get
    for name, raw in fields.items():
        try:
            value = int(raw)
        except ValueError:  # not written by a collector
            continue
        totals[name] = total(name, 0) + value


def units_of(at: int, windows: Sequence[int], settled_before: float) -> list[tuple[int, int]]:
    """How a cycle reads the seconds of its short windows: (first second, length) units,
    newest first. A unit is one second, or a settled 10 s chunk (aligned, complete before
    ``settled_before``) that no window starts inside."""
    starts = {at - window for window in windows}
    low = at - windows[-1]
    units: list[tuple[int, int]] = []
    second = at - 1
    while second >= low:
        chunk = second - second % CELL
        if (second == chunk + CELL - 1 and chunk >= low and chunk + CELL <= settled_before
                and not any(chunk < start < chunk + CELL for start in starts)):
            units.append((chunk, CELL))
            second = chunk - 1
        else:
            units.append((second, 1))
            second -= 1
    return units


def running_totals(units: Iterable[tuple[int, Mapping[Any, Any]]], at: int,
                   windows: Sequence[int]) -> dict[int, dict[Any, int]]:
    """Each window's field totals from units (first second, counters) given newest first.

    ``windows`` ascending; a window's totals are those of the units from ``at - window``.
    """
    totals: dict[Any, int] = {}
    out: dict[int, dict[Any, int]] = {}
    wanted = list(windows)
    done = 0
    for first, fields in units:
        add_into(totals, fields)
        while done < len(wanted) and first <= at - wanted[done]:
            out[wanted[done]] = dict(totals)
            done += 1
    for window in wanted[done:]:  # the units ended before the window's start
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


def read_graph_windows(redis_client: Any, windows: Sequence[int], at: int,
                       cache: WindowCache | None = None) -> dict[int, WindowTotals]:
    """Every short window's totals (``windows`` ascending): one pipeline, settled chunks
    from ``cache`` (and kept there once read)."""
    cache = cache if cache is not None else WindowCache()
    units = units_of(at, windows, cache.settled_before(at))
    cached: dict[int, Totals] = {}
    pipe = redis_client.pipeline(transaction=False)
    for first, length in units:
        found = cache.chunk(first, at) if length > 1 else None
        if found is not None:
            cached[first] = found
            continue
        for second in range(first + length - 1, first - 1, -1):
            pipe.hgetall(key_for(second))
    replies = iter(pipe.execute())

    def read() -> Iterable[tuple[int, Mapping[Any, Any]]]:
        for first, length in units:
            if first in cached and length > 1:
                yield first, cached[first]
            elif length == 1:
                yield first, next(replies)
            else:
                chunk: Totals = {}
                for _ in range(length):
                    add_into(chunk, next(replies))
                cache.keep_chunk(first, chunk, at)
                yield first, chunk

    totals = running_totals(read(), at, windows)
    cache.prune_chunks(at - GRAPH_READ_MAX_S - CELL)
    splitter = FieldSplitter()
    return {window: WindowTotals(window, splitter.by_series(totals[window])) for window in windows}


def evaluated_seconds(at: int, window: int) -> range:
    """The seconds a rule's window evaluated at second ``at`` covers.

    A short window: the ``window`` seconds before ``at``. A long one ends at the last whole
    10 s cell and is whole cells long (a 605 s window covers 610 s): it is read from whole
    cells only, and its rates are over the seconds it covers.
    """
    if window <= GRAPH_READ_MAX_S:
        return range(at - window, at)
    end = at - at % CELL
    return range(end - -(-window // CELL) * CELL, end)
