"""Long windows (over ``windows.GRAPH_READ_MAX_S``): a series' own 10 s cells, by kind.

One series' keys (``collector.seriesstore``: ``s10_key``, a hash per 600 s block holding
every 10 s cell of it) for every (target, window) of the cycle, in one pipeline: an hour of
one edge is seven small hashes, where an hour of the per-second graph hashes is ~6 s
(bench/RESULTS.md, Heatmap query). Only totals are needed, so the cells are added up by
kind here rather than split by second (``collector.series.split_replies``), and a block a
window covers whole is kept between cycles (``WindowCache``): a cycle reads the two blocks
at its window's ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from collector import seriesstore
from collector.series import Scope
from meshui.alerts.metrics import Counts
from meshui.alerts.window_cache import Totals, WindowCache
from meshui.alerts.windows import CELL, evaluated_seconds

_DIGITS = "0123456789"
_DIGIT_BYTES = _DIGITS.encode()


def block_totals(fields: Mapping[Any, Any], block: int, first: int, last: int, whole: bool
                 ) -> dict[Any, int]:
    """An s10 hash's counters added up by kind, over its cells within ``first..last``.

    A field is ``<cell><kind>`` (``seriesstore``); a part-covered block keeps the fields
    whose cell digits are among the wanted ones (a set lookup, not a parse: this loop is
    most of a cycle's reading, bench/alert_eval.py). Kinds come back as the hash's keys
    came (bytes from a client that does not decode).
    """
    out: dict[Any, int] = {}
    if not fields:
        return out
    as_bytes = isinstance(next(iter(fields)), bytes)
    digits: Any = _DIGIT_BYTES if as_bytes else _DIGITS
    wanted = None
    if not whole:
        cells = range(max(first - block, 0) // CELL, min(last - block + 1, seriesstore.BLOCK) // CELL)
        wanted = {str(cell).encode() if as_bytes else str(cell) for cell in cells}
    get = out.get
    for name, value in fields.items():
        kind = name.lstrip(digits)
        cut = len(name) - len(kind)
        if not cut or not kind or (wanted is not None and name[:cut] not in wanted):
            continue  # no cell number (not written by a collector), or outside the window
        try:
            out[kind] = get(kind, 0) + int(value)
        except ValueError:
            continue
    return out


def read_series_windows(redis_client: Any, wanted: Iterable[tuple[Scope, int]], at: int,
                        cache: WindowCache | None = None
                        ) -> dict[tuple[Scope, int], Counts | None]:
    """Each (scope, long window)'s counts, every read in one pipeline."""
    cache = cache if cache is not None else WindowCache()
    pairs = list(dict.fromkeys(wanted))
    pipe = redis_client.pipeline(transaction=False)
    # Per pair, its blocks: (key, block start, whole, cached totals or None when queued).
    planned: list[tuple[range, list[tuple[str, int, bool, Totals | None]]]] = []
    for scope, window in pairs:
        seconds = evaluated_seconds(at, window)
        first, last = seconds[0], seconds[-1]
        blocks = []
        for series in (scope.requests, scope.events):
            if series is None:
                continue
            for block in range(first - first % seriesstore.BLOCK, last + 1, seriesstore.BLOCK):
                key = seriesstore.s10_key(series, block)
                whole = block >= first and block + seriesstore.BLOCK - 1 <= last
                totals = cache.block(key, at) if whole else None
                if totals is None:
                    pipe.hgetall(key)
                blocks.append((key, block, whole, totals))
        planned.append((seconds, blocks))
    replies = iter(pipe.execute()) if any(
        totals is None for _, blocks in planned for *_, totals in blocks) else iter(())
    out: dict[tuple[Scope, int], Counts | None] = {}
    for pair, (seconds, blocks) in zip(pairs, planned, strict=True):
        kinds: dict[Any, int] = {}
        for key, block, whole, totals in blocks:
            if totals is None:
                totals = block_totals(next(replies), block, seconds[0], seconds[-1], whole)
                if whole and block + seriesstore.BLOCK <= cache.settled_before(at):
                    cache.keep_block(key, totals, at)
            for kind, value in totals.items():
                kinds[kind] = kinds.get(kind, 0) + value
        if not any(kinds.values()):
            out[pair] = None
            continue
        counts = Counts()
        counts.add_all({kind.decode() if isinstance(kind, bytes) else kind: value
                        for kind, value in kinds.items()})
        out[pair] = counts
    return out
