"""One fake clock for the whole suite: time that moves only when a test moves it.

The code under test takes a clock as a callable returning seconds (``time.monotonic`` in
production), so a ``FakeClock`` is passed where the clock goes and the test reads or moves
``now``: ``clock.advance(30.0)`` past an ejection, ``clock.now = deadline`` onto a boundary.
"""

from __future__ import annotations


class FakeClock:
    """Seconds that move only when a test says so; calling it reads them."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds``; return the new time."""
        self.now += seconds
        return self.now
