"""What a worker keeps between cycles so that it does not read the same settled data again.

Every 10 s the windows move by 10 s, and most of what they cover was read last cycle and has
not changed since: a collector files what it counts under the second it counts it
(``collector.graphwriter``) and flushes ten times a second, so a second of the graph store
is complete well within ``SETTLE_S`` of its end, and a 10 s cell of a series with it. So a
worker keeps:

- **chunks**: the per-second graph hashes of a settled, aligned 10 s chunk added up
  (``windows``: a 300 s window then reads its last 10-20 seconds, not 300);
- **blocks**: an s10 block's counters by kind, once a long window covers the block whole,
  and **tails**: the totals of the block a long window starts in, over the cells still in
  it (``series_windows``: an hour reads the block it ends in and a few fields, not seven
  blocks).

Data is settled ``SETTLE_S`` after its second. A collector whose write failed sends its
batch again, with the seconds it counted, once Redis answers, so after a failed read
(``failed``) nothing is kept for ``SUSPEND_S``, and nothing is kept longer than ``TTL_S``
either: a later resend than that is counted late, at most ``TTL_S`` later. One per worker
process (``meshui.alerts.tasks``); an evaluator without one reads everything each cycle,
which gives the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Totals = dict[Any, int]


@dataclass(frozen=True, slots=True)
class Tail:
    """A complete block's totals over its cells from ``cell`` on (where a window starts)."""

    cell: int
    totals: Totals

    def field(self, cell: int, kind: Any) -> Any:
        """The s10 hash field of ``kind`` in ``cell`` (bytes when the kinds are)."""
        return str(cell).encode() + kind if isinstance(kind, bytes) else f"{cell}{kind}"


class WindowCache:
    SETTLE_S = 10
    SUSPEND_S = 60
    TTL_S = 300

    def __init__(self, max_blocks: int = 20_000) -> None:
        self.max_blocks = max_blocks
        self._chunks: dict[int, tuple[float, Totals]] = {}
        self._blocks: dict[str, tuple[float, Totals]] = {}
        self._tails: dict[str, tuple[float, Tail]] = {}
        self._quiet_until = float("-inf")
        self.hits = self.misses = 0

    def settled_before(self, at: float) -> float:
        """Seconds before this one are settled (for what may be kept at ``at``)."""
        return at - self.SETTLE_S

    def storing(self, at: float) -> bool:
        return at >= self._quiet_until

    def failed(self, at: float) -> None:
        """The data source failed: forget everything, keep nothing for a while."""
        self._chunks.clear()
        self._blocks.clear()
        self._tails.clear()
        self._quiet_until = at + self.SUSPEND_S

    def _get(self, store: dict[Any, tuple[float, Any]], key: Any, at: float) -> Any:
        found = store.get(key)
        if found is None or at - found[0] > self.TTL_S:
            self.misses += 1
            return None
        self.hits += 1
        return found[1]

    def chunk(self, start: int, at: float) -> Totals | None:
        return self._get(self._chunks, start, at)

    def keep_chunk(self, start: int, totals: Totals, at: float) -> None:
        if self.storing(at):
            self._chunks[start] = (at, totals)

    def prune_chunks(self, before: int) -> None:
        """Drop the chunks no window reaches any more."""
        for start in [start for start in self._chunks if start < before]:
            del self._chunks[start]

    def block(self, key: str, at: float) -> Totals | None:
        return self._get(self._blocks, key, at)

    def keep_block(self, key: str, totals: Totals, at: float) -> None:
        if self.storing(at):
            self._keep(self._blocks, key, totals, at)

    def tail(self, key: str, at: float) -> Tail | None:
        """A tail kept fresh (its first read at most ``TTL_S`` ago), if any."""
        return self._get(self._tails, key, at)

    def keep_tail(self, key: str, tail: Tail, at: float) -> None:
        """Keep a tail; trimming one keeps the time of its first read (the TTL's start)."""
        kept = self._tails.get(key)
        since = kept[0] if kept is not None and at - kept[0] <= self.TTL_S else at
        if self.storing(at):
            self._keep(self._tails, key, tail, since)

    def _keep(self, store: dict[str, tuple[float, Any]], key: str, value: Any, stamp: float) -> None:
        if len(store) >= self.max_blocks:  # the oldest kept first
            for old in list(store)[: self.max_blocks // 4]:
                del store[old]
        store[key] = (stamp, value)
