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
from dataclasses import dataclass, field
from typing import Any

from collector import seriesstore
from collector.series import Scope
from meshui.alerts.metrics import Counts
from meshui.alerts.window_cache import Tail, Totals, WindowCache
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


@dataclass(slots=True)
class _BlockRead:
    """How one block of one series is read this cycle, and what it gave."""

    key: str
    block: int
    whole: bool
    totals: Totals | None = None  # known without a read (kept), or once read
    trim: Tail | None = None  # a kept tail to take the cells that left the window from
    dropped: list[Any] = field(default_factory=list)  # their fields (HMGET)


def _plan_block(key: str, block: int, first: int, last: int, at: int, cache: WindowCache,
                pipe: Any) -> _BlockRead:
    whole = block >= first and block + seriesstore.BLOCK - 1 <= last
    read = _BlockRead(key, block, whole)
    if whole:
        read.totals = cache.block(key, at)
    elif block < first and block + seriesstore.BLOCK - 1 <= last:
        # The window starts in it: a complete block whose older cells leave one by one.
        tail = cache.tail(key, at)
        start_cell = (first - block) // CELL
        if tail is not None and tail.cell <= start_cell:
            read.trim = tail
            read.dropped = [tail.field(cell, kind) for cell in range(tail.cell, start_cell)
                            for kind in tail.totals]
            if read.dropped:
                pipe.hmget(key, read.dropped)
            return read
    if read.totals is None:
        pipe.hgetall(key)
    return read


def _finish_block(read: _BlockRead, reply: Any, first: int, last: int, at: int,
                  cache: WindowCache) -> Totals:
    block, key = read.block, read.key
    if read.trim is not None:
        totals = dict(read.trim.totals)
        for name, value in zip(read.dropped, reply or (), strict=False):
            if value is not None:
                kind = name.lstrip(_DIGIT_BYTES if isinstance(name, bytes) else _DIGITS)
                left = totals.get(kind, 0) - int(value)
                if left > 0:
                    totals[kind] = left
                else:
                    totals.pop(kind, None)
        cache.keep_tail(key, Tail((first - block) // CELL, totals), at)
        return totals
    totals = block_totals(reply, block, first, last, read.whole)
    settled = block + seriesstore.BLOCK <= cache.settled_before(at)
    if read.whole and settled:
        cache.keep_block(key, totals, at)
    elif settled and block < first:
        cache.keep_tail(key, Tail((first - block) // CELL, totals), at)
    return totals


def read_series_windows(redis_client: Any, wanted: Iterable[tuple[Scope, int]], at: int,
                        cache: WindowCache | None = None
                        ) -> dict[tuple[Scope, int], Counts | None]:
    """Each (scope, long window)'s counts, every read in one pipeline.

    A window's blocks: the one it starts in (complete: its cells leave the window one a
    cycle, so once read its totals are kept and each cycle takes away, with an HMGET of a
    few fields, the cells that left), those it covers whole (kept once read), and the one
    it ends in (still being written: read each cycle).
    """
    cache = cache if cache is not None else WindowCache()
    pairs = list(dict.fromkeys(wanted))
    pipe = redis_client.pipeline(transaction=False)
    planned: list[tuple[range, list[_BlockRead]]] = []
    queued = 0
    for scope, window in pairs:
        seconds = evaluated_seconds(at, window)
        first, last = seconds[0], seconds[-1]
        reads = []
        for series in (scope.requests, scope.events):
            if series is None:
                continue
            for block in range(first - first % seriesstore.BLOCK, last + 1, seriesstore.BLOCK):
                read = _plan_block(seriesstore.s10_key(series, block), block, first, last, at,
                                   cache, pipe)
                queued += read.totals is None and (read.trim is None or bool(read.dropped))
                reads.append(read)
        planned.append((seconds, reads))
    replies = iter(pipe.execute() if queued else ())
    out: dict[tuple[Scope, int], Counts | None] = {}
    for pair, (seconds, reads) in zip(pairs, planned, strict=True):
        kinds: dict[Any, int] = {}
        for read in reads:
            totals = read.totals
            if totals is None:
                reply = next(replies) if read.trim is None or read.dropped else None
                totals = _finish_block(read, reply, seconds[0], seconds[-1], at, cache)
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
