"""What to do with an OTLP/HTTP export's outcome (pure decisions, injected randomness).

https://opentelemetry.io/docs/specs/otlp/#otlphttp-response : 2xx is success (possibly
partial), 429/502/503/504 are retryable and may carry Retry-After, every other 4xx/5xx
must not be retried. A connection failure is retryable too (the collector may come back).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


class Outcome(enum.Enum):
    OK = "ok"
    REJECTED = "rejected"
    RETRY = "retry"


RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.OK
    if status in RETRYABLE_STATUSES:
        return Outcome.RETRY
    return Outcome.REJECTED


def parse_retry_after(value: str | None, now_epoch_s: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), if valid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_epoch_s)


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with jitter that honours a server's Retry-After (capped)."""

    initial: float = 0.5
    maximum: float = 30.0
    max_retry_after: float = 120.0
    jitter: float = 0.2
    random: Callable[[], float] = random.random
    attempts: int = 0

    def next_delay(self, retry_after: float | None) -> float:
        """Seconds until the next attempt after a retryable failure."""
        self.attempts += 1
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        delay = min(self.maximum, self.initial * 2 ** (self.attempts - 1))
        return delay * (1 - self.jitter + 2 * self.jitter * self.random())

    def reset(self) -> None:
        self.attempts = 0
