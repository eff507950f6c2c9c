"""What a worker keeps between cycles so that it does not read the same settled data again.

Every 10 s the windows move by 10 s, and most of what they cover was read last cycle and has
not changed since: a collector files what it counts under the second it counts it
(``collector.graphwriter``) and flushes ten times a second, so a second of the graph store
is complete well within ``SETTLE_S`` of its end, and a 10 s cell of a series with it. So a
worker keeps:

- **chunks**: the per-second graph hashes of a settled, aligned 10 s chunk added up
  (``windows``: a 300 s window then reads its last 10-20 seconds, not 300);
- **blocks**: an s10 block's counters by kind, once a long window covers the block whole
  (``series_windows``: an hour reads its two end blocks, not seven).

Data is settled ``SETTLE_S`` after its second. A collector whose write failed sends its
batch again, with the seconds it counted, once Redis answers, so after a failed read
(``failed``) nothing is kept for ``SUSPEND_S``, and nothing is kept longer than ``TTL_S``
either: a later resend than that is counted late, at most ``TTL_S`` later. One per worker
process (``meshui.alerts.tasks``); an evaluator without one reads everything each cycle,
which gives the same values.
"""

from __future__ import annotations

from typing import Any

Totals = dict[Any, int]


class WindowCache:
    SETTLE_S = 10
    SUSPEND_S = 60
    TTL_S = 300

    def __init__(self, max_blocks: int = 20_000) -> None:
        self.max_blocks = max_blocks
        self._chunks: dict[int, tuple[float, Totals]] = {}
        self._blocks: dict[str, tuple[float, Totals]] = {}
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
        self._quiet_until = at + self.SUSPEND_S

    def _get(self, store: dict[Any, tuple[float, Totals]], key: Any, at: float) -> Totals | None:
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
        if not self.storing(at):
            return
        if len(self._blocks) >= self.max_blocks:  # the oldest kept first
            for old in list(self._blocks)[: self.max_blocks // 4]:
                del self._blocks[old]
        self._blocks[key] = (at, totals)
