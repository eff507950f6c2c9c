"""The ring of recent span records: what a sidecar holds of its unsampled requests, briefly.

Tail keep (issue 9, ``proxies.telemetry.tailkeep``) needs the spans of a trace that turned
out slow or failed *after* this sidecar's part of it ended, without shipping every span to
the collector. So each unsampled request leaves one **record**, a plain tuple of the values
its span would be made of (``RECORD_FIELDS``), here for a few seconds; nothing is encoded
unless someone asks for the trace.

Records are kept in ``GENERATIONS`` dicts of trace id -> that trace's records, the newest
taking every new record. A generation is closed when it holds ``size / GENERATIONS``
records or has been open ``max_age_s / (GENERATIONS - 1)`` seconds; closing one drops the oldest
whole (counted ``overwritten`` when the count closed it, ``expired`` when time did). So the
ring holds at most ``size`` records and at least the last three quarters of that, and a
record stays at least ``max_age_s`` (if the count allows) and at most a third more;
``take`` never hands out an older one, and ``sweep`` closes generations on time when no
request comes to do it. A trace holds at most
``max_per_trace`` records in a generation; more are not held (``per_trace_full``).

Why generations rather than a deque in arrival order beside the dict: expiring one record at
a time (a deque pop, a dict lookup and a delete for every record added, on a full ring) was
most of an add's cost; a generation is dropped in one reference swap (its dict freed in C).
And why tuples all the way down: a trace's value is its record, or once it has more than
one a tuple of them (rebuilt on each further one: a handful at most), never a list; a
record holds only atomic values (the instance's address, not the
``Endpoint``), so CPython's collector stops tracking them at their first collection. With
a list per trace, and the ring's thousands of live containers promoted to the oldest generation,
cyclic GC passes doubled the cost of an add (measured in-process: ~0.85 µs against ~0.35
with ``gc.disable()``; bench/RESULTS.md, "Telemetry overhead", has the figures of this
layout). ``take`` hands a trace's records over and forgets them, so a trace asked for twice
is exported once.

Pure: times are passed in (the data path's ``time.perf_counter`` seconds), no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

# One record: what ``SpanData`` needs, raw (bytes as they came, perf_counter seconds).
RECORD_FIELDS = (
    "trace_id", "span_id", "parent_span_id", "outbound", "method", "target", "host",
    "status", "destination_service", "destination_version", "address", "t0", "end",
    "failed", "events",
)  # fmt: skip
TRACE_ID, END = RECORD_FIELDS.index("trace_id"), RECORD_FIELDS.index("end")
Record = tuple[Any, ...]

GENERATIONS = 4
# ~440 bytes a record keeps alive (bench/RESULTS.md): 4096 records are ~1.8 MB. A bigger ring
# costs every request more than its add (its records push the data path's own objects out of
# the CPU's caches: +12% CPU on the hop at 10000, within noise at 2500; "Sidecar hop: tail keep
# on vs off"), so the default holds a few seconds at a few hundred requests a second.
DEFAULT_SIZE = 4096
DEFAULT_MAX_AGE_S = 5.0
DEFAULT_MAX_PER_TRACE = 64


class SpanRing:
    """Recent records by trace id, bounded by count and age (see the module docstring)."""

    __slots__ = ("size", "max_age_s", "max_per_trace", "limit", "span_s", "generations", "counts",
                 "current", "count", "rotate_at", "dropped")

    def __init__(self, size: int = DEFAULT_SIZE, max_age_s: float = DEFAULT_MAX_AGE_S,
                 max_per_trace: int = DEFAULT_MAX_PER_TRACE) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be positive, got {max_age_s}")
        self.size = size
        self.max_age_s = max_age_s
        self.max_per_trace = max_per_trace
        self.limit = max(1, size // GENERATIONS)  # records a generation takes
        # Seconds a generation stays open: the oldest is dropped when GENERATIONS newer ones
        # were opened, so every record is held at least max_age_s (take() cuts at it).
        self.span_s = max_age_s / (GENERATIONS - 1)
        # Oldest first; the last one is ``current``, whose count is ``count`` (the others'
        # are in ``counts``, less what was taken from them).
        # A trace's value: its one record, or a tuple of its records (``_records``).
        self.generations: deque[dict[bytes, Any]] = deque([{}])
        self.counts: deque[int] = deque([0])
        self.current = self.generations[-1]
        self.count = 0
        self.rotate_at = -math.inf  # the first record opens the first generation's clock
        self.dropped = {"overwritten": 0, "expired": 0, "per_trace_full": 0}

    def __len__(self) -> int:
        return self.held()

    def add(self, record: Record) -> None:
        """Hold ``record`` (on the request path: one dict lookup and an append, mostly)."""
        if self.count >= self.limit or record[END] >= self.rotate_at:
            self._rotate(record[END], "overwritten" if self.count >= self.limit else "expired")
        current = self.current
        trace_id = record[0]
        held = current.get(trace_id)
        if held is None:
            current[trace_id] = record  # a trace's first record is its own value: no wrapper
        elif held[0] is trace_id or type(held[0]) is bytes:
            current[trace_id] = (held, record)
        elif len(held) < self.max_per_trace:
            current[trace_id] = held + (record,)
        else:
            self.dropped["per_trace_full"] += 1
            return
        self.count += 1

    def _rotate(self, now: float, reason: str) -> None:
        """Close the current generation, open a new one; drop the oldest past GENERATIONS."""
        generations, counts = self.generations, self.counts
        counts[-1] = self.count
        generations.append({})
        counts.append(0)
        while len(generations) > GENERATIONS:
            generations.popleft()
            self.dropped[reason] += counts.popleft()
        self.current = generations[-1]
        self.count = 0
        self.rotate_at = now + self.span_s

    def sweep(self, now: float) -> None:
        """Close generations that time has closed (when no request came to do it)."""
        for _ in range(GENERATIONS):
            if now < self.rotate_at:
                return
            self._rotate(self.rotate_at, "expired")
        self.rotate_at = now + self.span_s

    def take(self, trace_id: bytes, now: float) -> list[Record]:
        """The records held of ``trace_id`` (oldest first), forgotten here; [] when none.

        Records that ended more than ``max_age_s`` before ``now`` are never handed out.
        """
        self.sweep(now)
        cutoff = now - self.max_age_s
        taken: list[Record] = []  # a new list: the caller may append to it
        generations, counts = self.generations, self.counts
        last = len(generations) - 1
        for index, generation in enumerate(generations):
            held = generation.pop(trace_id, None)
            if held is None:
                continue
            records = _records(held)
            if index == last:
                self.count -= len(records)
            else:
                counts[index] -= len(records)
            taken += [record for record in records if record[END] >= cutoff]
        return taken

    def held(self) -> int:
        """Records held now (for the admin port and tests)."""
        return sum(self.counts) - self.counts[-1] + self.count

    def holds(self, trace_id: bytes) -> bool:
        return any(trace_id in generation for generation in self.generations)


def _records(held: Any) -> tuple[Record, ...]:
    """A generation's value for a trace: one record (its first field, the trace id, is
    bytes) or a tuple of records."""
    return (held,) if type(held[0]) is bytes else held
