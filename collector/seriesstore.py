"""Each series of the graph store on its own, for reading one series over a long window.

The per-second graph hashes (``collector.graphstore``) hold every edge's and service's
fields in one hash a second: right for the graph, which adds all of them up, wrong for a
heatmap or a chart of one edge over an hour, which would read 3,600 hashes to keep a few
fields of each (bench/heatmap_query.py: ~1 s). So the graph writer also files every
increment of a series under keys of that series alone, at two resolutions:

    meshui:s1:<series><minute start>     fields <second - minute start><kind>   (per second)
    meshui:s10:<series><block start>     fields <(second - block start) // 10><kind>
                                         (per 10 s cell, a block is 600 s)

``<series>`` is the field prefix of the graph store (``e␟src␟dst␟``, ``n␟svc␟``, ...,
ending with the separator), so the time after it is unambiguous; ``<kind>`` is the rest of
the graph field (``n``, ``x``, ``h12``, an event name), which never starts with a digit. Both
are written in the same at-most-once batch as the graph's hashes, so a series read over a
window holds exactly the graph's counts for it over that window.

A read over seconds ``first..last`` takes whole 10 s cells from the s10 keys where the
column step is a multiple of 10, and seconds from the s1 keys for the rest (the partial cells
at both ends, or every second for other steps): one hour at 10 s steps is ~7 small hashes.

Exemplars (a trace that landed in a latency bucket) are kept per 10 s cell and bucket:

    meshui:x:<series><block start>       fields <cell>␟<bucket index> -> exemplar text

one per field, an error's preferred over a success's (``EXEMPLAR_SET`` in the writer's
script), otherwise the latest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from collector.graphstore import MAX_WINDOW, SEP
from collector.records import Exemplar

S1_PREFIX = "meshui:s1:"
S10_PREFIX = "meshui:s10:"
EXEMPLAR_PREFIX = "meshui:x:"
MINUTE = 60
CELL = 10
BLOCK = 600
# Keys live until the widest window no longer reaches back to their last second.
S1_TTL = MAX_WINDOW + MINUTE + 60
S10_TTL = MAX_WINDOW + BLOCK + 60

# Graph field kinds that are series (the parts before the last one name the series).
_SERIES_PARTS = {"e": 4, "ev": 5, "es": 4, "n": 3, "nv": 4, "i": 4, "r": 4, "rn": 3, "ri": 4}


def split_field(name: str) -> tuple[str, str] | None:
    """A graph field's series prefix and kind, or None for a field that is no series' part."""
    first = name.find(SEP)
    if first < 0:
        return None
    parts = _SERIES_PARTS.get(name[:first])
    if parts is None or name.count(SEP) != parts - 1:
        return None
    cut = name.rfind(SEP) + 1
    kind = name[cut:]
    if not kind or kind[0].isdigit():
        return None
    return name[:cut], kind


def s1_key(series: str, second: int) -> str:
    return f"{S1_PREFIX}{series}{second - second % MINUTE}"


def s10_key(series: str, second: int) -> str:
    return f"{S10_PREFIX}{series}{second - second % BLOCK}"


def exemplar_key(series: str, second: int) -> str:
    return f"{EXEMPLAR_PREFIX}{series}{second - second % BLOCK}"


def exemplar_field(second: int, bucket: int) -> str:
    return f"{second % BLOCK // CELL}{SEP}{bucket}"


def series_increments(per_second: Mapping[int, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """The s1 and s10 increments of the graph increments ``per_second`` (second -> fields)."""
    out: dict[str, dict[str, int]] = {}
    for second, fields in per_second.items():
        offset, cell = str(second % MINUTE), str(second % BLOCK // CELL)
        for name, value in fields.items():
            split = split_field(name)
            if split is None:
                continue
            series, kind = split
            s1 = out.setdefault(s1_key(series, second), {})
            s1[offset + kind] = s1.get(offset + kind, 0) + value
            s10 = out.setdefault(s10_key(series, second), {})
            s10[cell + kind] = s10.get(cell + kind, 0) + value
    return out


def exemplar_text(exemplar: Exemplar) -> str:
    """How an exemplar is stored; the first character is what the writer's script compares:
    E (an error's) wins over - (a success's)."""
    return (f"{'E' if exemplar.error else '-'}{exemplar.trace_id},{exemplar.span_id},"
            f"{exemplar.value_ms:.3f},{exemplar.time:.3f}")


def parse_exemplar(text: str) -> Exemplar | None:
    try:
        trace_id, span_id, value, when = text[1:].split(",")
        return Exemplar(trace_id, span_id, float(value), float(when), text[0] == "E")
    except (ValueError, IndexError):  # not written by a collector
        return None


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """Which keys a read of one series over ``first..last`` takes, and which part of each."""

    first: int
    last: int
    cells: bool  # whole 10 s cells from the s10 keys where they fit in the window
    s1_keys: list[str]
    s10_keys: list[str]
    exemplar_keys: list[str]

    def cell_used(self, start: int) -> bool:
        """Whether the 10 s cell starting at ``start`` is read whole from an s10 key."""
        return self.cells and start >= self.first and start + CELL - 1 <= self.last


def plan_read(series: str, first: int, last: int, step: int) -> ReadPlan:
    """The keys to read for ``series`` over seconds ``first..last`` at ``step``-second columns."""
    cells = step % CELL == 0
    seconds_needed: list[int] = []
    blocks: list[int] = []
    second = first
    while second <= last:
        start = second - second % CELL
        if cells and start >= first and start + CELL - 1 <= last:
            block = start - start % BLOCK
            if not blocks or blocks[-1] != block:
                blocks.append(block)
            second = start + CELL
        else:
            seconds_needed.append(second)
            second += 1
    minutes = sorted({second - second % MINUTE for second in seconds_needed})
    exemplar_blocks = range(first - first % BLOCK, last + 1, BLOCK)
    return ReadPlan(
        first, last, cells,
        s1_keys=[f"{S1_PREFIX}{series}{minute}" for minute in minutes],
        s10_keys=[f"{S10_PREFIX}{series}{block}" for block in blocks],
        exemplar_keys=[f"{EXEMPLAR_PREFIX}{series}{block}" for block in exemplar_blocks],
    )


def _start_of(key: str | bytes) -> int:
    text = key.decode() if isinstance(key, bytes) else key
    return int(text[text.rfind(SEP) + 1:])


# A counter field: the offset's digits, then the kind (which never starts with a digit).
_FIELD_BYTES = re.compile(rb"([0-9]+)([^0-9].*)", re.S).fullmatch
_FIELD_TEXT = re.compile(r"([0-9]+)([^0-9].*)", re.S).fullmatch


def _offset_kind(field: str | bytes) -> tuple[int, str] | None:
    if isinstance(field, bytes):
        raw = _FIELD_BYTES(field)
        return None if raw is None else (int(raw[1]), raw[2].decode())
    text = _FIELD_TEXT(field)
    return None if text is None else (int(text[1]), text[2])


def per_second(plan: ReadPlan, s1: Iterable[Mapping[bytes | str, bytes | str]],
               s10: Iterable[Mapping[bytes | str, bytes | str]]) -> dict[int, dict[str, int]]:
    """The series' counts by second (an s10 cell's under its first second), in the window only.

    ``s1`` and ``s10`` are the hashes of ``plan.s1_keys`` and ``plan.s10_keys``, in order.
    """
    out: dict[int, dict[str, int]] = {}

    def add(second: int, kind: str, raw: bytes | str) -> None:
        try:
            value = int(raw)
        except ValueError:  # not written by a collector
            return
        fields = out.setdefault(second, {})
        fields[kind] = fields.get(kind, 0) + value

    for key, fields in zip(plan.s1_keys, s1, strict=True):
        minute = _start_of(key)
        for raw_field, raw_value in fields.items():
            parsed = _offset_kind(raw_field)
            if parsed is None:
                continue
            second = minute + parsed[0]
            # Seconds of a cell read whole from s10 are skipped here, so none counts twice.
            if plan.first <= second <= plan.last and not plan.cell_used(second - second % CELL):
                add(second, parsed[1], raw_value)
    for key, fields in zip(plan.s10_keys, s10, strict=True):
        block = _start_of(key)
        for raw_field, raw_value in fields.items():
            parsed = _offset_kind(raw_field)
            if parsed is None:
                continue
            start = block + parsed[0] * CELL
            if plan.cell_used(start):
                add(start, parsed[1], raw_value)
    return out


def exemplars(plan: ReadPlan, hashes: Iterable[Mapping[bytes | str, bytes | str]]
              ) -> list[tuple[int, int, Exemplar]]:
    """The exemplars of ``plan.exemplar_keys``' hashes: (cell start second, bucket, exemplar)."""
    found: list[tuple[int, int, Exemplar]] = []
    for key, fields in zip(plan.exemplar_keys, hashes, strict=True):
        block = _start_of(key)
        for raw_field, raw_value in fields.items():
            name = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
            cell, _, bucket = name.partition(SEP)
            if not cell.isdigit() or not bucket.lstrip("-").isdigit():
                continue
            start = block + int(cell) * CELL
            if start + CELL - 1 < plan.first or start > plan.last:
                continue
            exemplar = parse_exemplar(raw_value.decode() if isinstance(raw_value, bytes) else raw_value)
            if exemplar is not None:
                found.append((start, int(bucket), exemplar))
    return found


def queue_reads(pipe: object, plan: ReadPlan, *, with_exemplars: bool = False) -> None:
    """Queue the HGETALLs of a plan on a redis-py pipeline (sync or async)."""
    keys = plan.s1_keys + plan.s10_keys + (plan.exemplar_keys if with_exemplars else [])
    for key in keys:
        pipe.hgetall(key)  # type: ignore[attr-defined]


def split_replies(plan: ReadPlan, replies: list[Any], *, with_exemplars: bool = False
                  ) -> tuple[dict[int, dict[str, int]], list[tuple[int, int, Exemplar]]]:
    """The replies of ``queue_reads``: counts by second and, if read, exemplars."""
    n1, n10 = len(plan.s1_keys), len(plan.s10_keys)
    counts = per_second(plan, replies[:n1], replies[n1:n1 + n10])
    found = exemplars(plan, replies[n1 + n10:]) if with_exemplars else []
    return counts, found


def ttl_of(key: str) -> int:
    """How long a series key lives after its last write."""
    return S1_TTL if key.startswith(S1_PREFIX) else S10_TTL
