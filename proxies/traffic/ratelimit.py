"""Local rate limits: a token bucket per destination and one per calling service.

Envoy's local rate limit filter, per destination service: when a bucket is empty the
request is answered 429 with ``Retry-After`` (the time until the next token) and the
``x-meshui-ratelimited`` header naming the scope that refused it (``destination`` for the
bucket all callers share, ``source`` for the caller's own). Pure and clocked: buckets refill
lazily from the injected clock when asked, so nothing runs in the background.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

from proxies.policy.schema import RateLimit, TokenBucketSpec

DESTINATION = "destination"
SOURCE = "source"
MAX_SOURCES = 10_000  # per-source buckets kept; the least recently used is dropped past this

# Refill is float arithmetic on clock differences; a bucket that is due a token to within a
# nanosecond's worth of rate gets it, so "one token every 0.1 s" admits at exactly t + 0.1.
_EPSILON = 1e-9


class TokenBucket:
    """``burst`` tokens at most, refilled at ``requests_per_second``; a request takes one."""

    __slots__ = ("_clock", "_rate", "_capacity", "_tokens", "_stamp")

    def __init__(self, spec: TokenBucketSpec, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._rate = spec.requests_per_second
        self._capacity = spec.burst
        self._tokens = spec.burst  # starts full: a burst is admitted at once
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._stamp:
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def wait(self) -> float:
        """Seconds until a token is available, 0.0 if one is now; takes nothing."""
        self._refill()
        missing = 1.0 - self._tokens
        if missing <= _EPSILON:
            return 0.0
        if self._rate <= 0 or self._capacity < 1.0:
            return math.inf  # this bucket can never hold a whole token
        return missing / self._rate

    def take(self) -> float:
        """0.0 if a token was taken (admitted), else seconds until one will be (Retry-After)."""
        waiting = self.wait()
        if waiting == 0.0:
            self._tokens -= 1.0
        return waiting

    def _take_admitted(self) -> None:
        """Take a token ``wait`` just said is there (no refill in between)."""
        self._tokens -= 1.0

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens


class RateLimiter:
    """The limits of one destination: a shared bucket and a bucket per calling service.

    A request is admitted only if every configured bucket has a token, and then takes one
    from each; a refused request takes none, so a caller over its own limit does not drain
    the shared bucket. Per-source buckets are kept in a bounded LRU (``max_sources``); an
    evicted caller comes back with a full bucket, which errs on the side of admitting.
    """

    __slots__ = (
        "spec",
        "_clock",
        "_total",
        "_per_source",
        "_sources",
        "_max_sources",
        "rejected",
        "rejected_scope",
        "evicted_total",
    )

    def __init__(self, spec: RateLimit, clock: Callable[[], float], max_sources: int = MAX_SOURCES) -> None:
        self.spec = spec
        self._clock = clock
        self._total = TokenBucket(spec.total, clock) if spec.total is not None else None
        self._per_source = spec.per_source
        self._sources: OrderedDict[str, TokenBucket] = OrderedDict()
        self._max_sources = max_sources
        self.rejected = {DESTINATION: 0, SOURCE: 0}
        self.rejected_scope: str | None = None  # the scope that refused the latest refused request
        self.evicted_total = 0

    def _source_bucket(self, source: str, spec: TokenBucketSpec) -> TokenBucket:
        bucket = self._sources.get(source)
        if bucket is None:
            bucket = self._sources[source] = TokenBucket(spec, self._clock)
            if len(self._sources) > self._max_sources:
                self._sources.popitem(last=False)
                self.evicted_total += 1
        else:
            self._sources.move_to_end(source)
        return bucket

    def admit(self, source: str) -> float:
        """0.0 if the request from ``source`` is admitted, else seconds until it would be.

        On a refusal ``rejected_scope`` names the bucket at fault (``source`` when the
        caller's own bucket is empty, else ``destination``) and ``rejected`` counts it.
        """
        total = self._total
        own = self._source_bucket(source, self._per_source) if self._per_source is not None else None
        total_wait = total.wait() if total is not None else 0.0
        own_wait = own.wait() if own is not None else 0.0
        if total_wait == 0.0 and own_wait == 0.0:
            if total is not None:
                total._take_admitted()
            if own is not None:
                own._take_admitted()
            return 0.0
        scope = SOURCE if own_wait > 0.0 else DESTINATION
        self.rejected[scope] += 1
        self.rejected_scope = scope
        return max(total_wait, own_wait)

    @property
    def sources(self) -> int:
        """How many per-source buckets are kept."""
        return len(self._sources)


def limiter_for(
    spec: RateLimit, previous: RateLimiter | None, clock: Callable[[], float]
) -> RateLimiter | None:
    """The limiter for ``spec``: None when it limits nothing, ``previous`` when its spec is unchanged.

    Carrying the limiter over keeps its buckets (and its callers' buckets) across a policy
    swap that does not touch the rate limit; a changed limit starts with full buckets.
    """
    if spec.total is None and spec.per_source is None:
        return None
    if previous is not None and previous.spec == spec:
        return previous
    return RateLimiter(spec, clock)
