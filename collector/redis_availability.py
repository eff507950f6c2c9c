"""Whether Redis is reachable: one state that every component touching Redis updates.

The graph exporter writes only when there is data, so on its own it would notice an outage
only once traffic arrives. The live publisher touches Redis every ``interval_s`` anyway (it
takes the publish lock), so it reports here too: an outage shows on ``/health`` within about
a second even when the collector is idle. A failure from either marks Redis unavailable; a
success from either marks it available again.
"""

from __future__ import annotations

import logging

from collector.stats import CollectorStats

log = logging.getLogger(__name__)


class RedisAvailability:
    """The last Redis round trip's outcome, kept in ``stats.redis_available``."""

    def __init__(self, stats: CollectorStats) -> None:
        self.stats = stats
        self.last_error = ""

    @property
    def available(self) -> bool:
        return self.stats.redis_available

    def succeeded(self) -> None:
        if not self.stats.redis_available:
            log.info("Redis is reachable again")
        self.stats.redis_available = True
        self.last_error = ""

    def failed(self, exc: BaseException) -> None:
        if self.stats.redis_available:
            log.warning("Redis is unreachable: %s", exc)
        self.stats.redis_available = False
        self.last_error = str(exc) or type(exc).__name__
