"""A Celery beat schedule due at every multiple of its period (epoch seconds), plus an offset.

Celery's own ``schedule(run_every)`` counts from whenever beat started, so its runs can fall
anywhere in an interval, and one near an interval's boundary drifts across it from one run
to the next: two runs in one evaluation cycle (the second skipped by the cycle's lock) and
none in the next. Aligned runs stay ``offset`` seconds into their cycle.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta
from typing import Any

from celery.schedules import schedstate, schedule


class aligned(schedule):  # noqa: N801 (Celery's schedules are lower case: crontab, solar)
    def __init__(self, every_s: float, offset_s: float = 0.0, **kwargs: Any) -> None:
        if not 0 <= offset_s < every_s:
            raise ValueError(f"offset_s must be in [0, {every_s:g}), got {offset_s:g}")
        super().__init__(run_every=timedelta(seconds=every_s), **kwargs)
        self.every_s, self.offset_s = float(every_s), float(offset_s)

    def last_tick(self, at: float) -> float:
        return math.floor((at - self.offset_s) / self.every_s) * self.every_s + self.offset_s

    def due(self, last_run: float, now: float) -> tuple[bool, float]:
        """Whether a run is due at ``now`` after one at ``last_run``, and the seconds until
        the next tick (what beat sleeps at most)."""
        tick = self.last_tick(now)
        return last_run < tick, tick + self.every_s - now

    def is_due(self, last_run_at: datetime) -> schedstate:
        is_due, wait = self.due(self.maybe_make_aware(last_run_at).timestamp(), time.time())
        return schedstate(is_due, wait)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        now = time.time()
        return timedelta(seconds=self.last_tick(now) + self.every_s - now)

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (self.every_s, self.offset_s)

    def __repr__(self) -> str:
        return f"<aligned: every {self.every_s:g} s at +{self.offset_s:g} s>"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, aligned) and other.every_s == self.every_s
                and other.offset_s == self.offset_s)

    def __hash__(self) -> int:
        return hash((self.every_s, self.offset_s))
