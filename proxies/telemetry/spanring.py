"""The ring of recent span records: what a sidecar holds of its unsampled requests, briefly.

Tail keep (issue 9, ``proxies.telemetry.tailkeep``) needs the spans of a trace that turned
out slow or failed *after* this sidecar's part of it ended, without shipping every span to
the collector. So each unsampled request leaves one **record**, a plain tuple of the values
its span would be made of (``RECORD_FIELDS``), here for a few seconds; nothing is encoded
unless someone asks for the trace.

Bounded by count (``size`` records: past it the oldest goes, counted ``overwritten``) and by
age (``max_age_s``: ``sweep`` drops older ones, counted ``expired``, and every lookup sweeps
first, so nothing older is ever handed out). A trace holds at most ``max_per_trace``
records; more are not held (``per_trace_full``). Lookup is by trace id: a dict of trace id
-> its records, beside a deque of every record in arrival order for expiry. ``take`` hands
a trace's records over and forgets them, so a trace asked for twice is exported once.

Pure: times are passed in (the data path's ``time.perf_counter`` seconds), no I/O.
"""

from __future__ import annotations

from collections import deque
from typing import Any

# One record: what ``SpanData`` needs, raw (bytes as they came, perf_counter seconds).
RECORD_FIELDS = (
    "trace_id", "span_id", "parent_span_id", "outbound", "method", "target", "host",
    "status", "destination_service", "destination_version", "endpoint", "t0", "end",
    "failed", "events",
)  # fmt: skip
TRACE_ID, END = RECORD_FIELDS.index("trace_id"), RECORD_FIELDS.index("end")
Record = tuple[Any, ...]

DEFAULT_SIZE = 10_000
DEFAULT_MAX_AGE_S = 5.0
DEFAULT_MAX_PER_TRACE = 64


class SpanRing:
    """Recent records by trace id, bounded by count and age (see the module docstring)."""

    __slots__ = ("size", "max_age_s", "max_per_trace", "by_trace", "order", "dropped")

    def __init__(self, size: int = DEFAULT_SIZE, max_age_s: float = DEFAULT_MAX_AGE_S,
                 max_per_trace: int = DEFAULT_MAX_PER_TRACE) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be positive, got {max_age_s}")
        self.size = size
        self.max_age_s = max_age_s
        self.max_per_trace = max_per_trace
        self.by_trace: dict[bytes, list[Record]] = {}
        self.order: deque[Record] = deque()
        self.dropped = {"overwritten": 0, "expired": 0, "per_trace_full": 0}

    def __len__(self) -> int:
        return len(self.order)

    def add(self, record: Record) -> None:
        """Hold ``record`` (on the request path: a few dict and deque operations)."""
        by_trace = self.by_trace
        trace_id = record[0]
        held = by_trace.get(trace_id)
        if held is None:
            by_trace[trace_id] = [record]
        elif len(held) < self.max_per_trace:
            held.append(record)
        else:
            self.dropped["per_trace_full"] += 1
            return
        order = self.order
        if len(order) >= self.size:
            self._forget(order.popleft())
            self.dropped["overwritten"] += 1
        order.append(record)

    def _forget(self, record: Record) -> None:
        """Drop the oldest record from its trace's list, unless the trace was taken since."""
        by_trace = self.by_trace
        trace_id = record[0]
        held = by_trace.get(trace_id)
        # Records of a trace are held in arrival order, so the oldest is the list's first;
        # a list that does not start with it was made after the trace was taken.
        if held is not None and held[0] is record:
            if len(held) == 1:
                del by_trace[trace_id]
            else:
                del held[0]

    def sweep(self, now: float) -> int:
        """Drop every record that ended more than ``max_age_s`` before ``now``; how many."""
        order = self.order
        cutoff = now - self.max_age_s
        dropped = 0
        while order and order[0][END] < cutoff:
            self._forget(order.popleft())
            dropped += 1
        self.dropped["expired"] += dropped
        return dropped

    def take(self, trace_id: bytes, now: float) -> list[Record]:
        """The records held of ``trace_id`` (oldest first), forgotten here; [] when none."""
        self.sweep(now)
        # The deque still holds them until they age out; _forget then sees the list gone.
        return self.by_trace.pop(trace_id, None) or []

    def held(self) -> int:
        """Records held now (O(traces): for the admin port, not the request path)."""
        return sum(map(len, self.by_trace.values()))

    def holds(self, trace_id: bytes) -> bool:
        return trace_id in self.by_trace
