"""Export state of one telemetry signal: its backlog of encoded batches, backoff and counters."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from proxies.telemetry.export_retry import Backoff


@dataclass(slots=True)
class Batch:
    """One encoded export request and how many items (measurements or spans) it carries.

    ``events`` counts the traffic-policy increments (retries, ejections, ...) it carries
    beside them, so a dropped batch counts those too, in their own unit.
    """

    body: bytes
    items: int
    events: int = 0


@dataclass(slots=True)
class SignalExport:
    """Export state of one signal: its backlog (groups of batches), backoff and counters.

    A group is what one interval (metrics) or one span batch produced; the backlog drops
    whole groups, oldest first, past ``max_groups``.
    """

    name: str
    path: str
    max_groups: int
    backlog: deque[list[Batch]] = field(default_factory=deque)
    retry_at: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)
    exported: int = 0
    errors: int = 0

    def pending_items(self) -> int:
        return sum(batch.items for group in self.backlog for batch in group)

    def pending_events(self) -> int:
        return sum(batch.events for group in self.backlog for batch in group)
