"""Local rate limits: token buckets per destination and per calling service."""

from __future__ import annotations

import math

import pytest

from proxies.dataplane.errors import rate_limited
from proxies.policy.schema import RateLimit, TokenBucketSpec
from proxies.traffic.ratelimit import RateLimiter, TokenBucket
from tests.clock import FakeClock


def test_the_bucket_admits_its_burst_at_once():
    clock = FakeClock()
    bucket = TokenBucket(TokenBucketSpec(requests_per_second=10, burst=5), clock)
    assert [bucket.take() for _ in range(5)] == [0.0] * 5
    assert bucket.take() > 0.0


def test_the_bucket_admits_its_rate_over_time():
    clock = FakeClock()
    bucket = TokenBucket(TokenBucketSpec(requests_per_second=10, burst=5), clock)
    admitted = 0
    for _ in range(10_000):  # one attempt a millisecond for 10 s
        admitted += bucket.take() == 0.0
        clock.advance(0.001)
    assert admitted == pytest.approx(5 + 10 * 10, abs=1)


def test_retry_after_is_the_time_until_the_next_token():
    clock = FakeClock()
    bucket = TokenBucket(TokenBucketSpec(requests_per_second=4, burst=1), clock)
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.25)
    clock.advance(0.1)
    assert bucket.take() == pytest.approx(0.15)
    clock.advance(0.15)
    assert bucket.take() == 0.0


def test_a_refused_take_takes_nothing():
    clock = FakeClock()
    bucket = TokenBucket(TokenBucketSpec(requests_per_second=1, burst=1), clock)
    bucket.take()
    for _ in range(100):
        bucket.take()
    clock.advance(1.0)
    assert bucket.take() == 0.0


def test_an_idle_bucket_refills_no_higher_than_its_burst():
    clock = FakeClock()
    bucket = TokenBucket(TokenBucketSpec(requests_per_second=100, burst=3), clock)
    clock.advance(3600)
    assert [bucket.take() for _ in range(4)][:3] == [0.0] * 3
    assert bucket.take() > 0.0


def test_a_bucket_that_cannot_hold_a_token_never_admits():
    bucket = TokenBucket(TokenBucketSpec(requests_per_second=0, burst=0), FakeClock())
    assert bucket.take() == math.inf


@pytest.mark.parametrize(("wait", "header"), [(0.01, 1), (1.0, 1), (1.2, 2), (59.5, 60)])
def test_retry_after_is_whole_seconds_rounded_up(wait, header):
    assert (b"retry-after", b"%d" % header) in rate_limited("payments", "destination", wait).headers


def test_the_destination_bucket_is_shared_by_every_caller():
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(total=TokenBucketSpec(1, 2)), clock)
    assert limiter.admit("orders") == 0.0
    assert limiter.admit("checkout") == 0.0
    assert limiter.admit("frontend") == pytest.approx(1.0)
    assert limiter.rejected_scope == "destination"
    assert limiter.rejected == {"destination": 1, "source": 0}


def test_per_source_buckets_are_independent():
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(per_source=TokenBucketSpec(1, 2)), clock)
    assert [limiter.admit("orders") for _ in range(3)][:2] == [0.0, 0.0]
    assert limiter.rejected_scope == "source"
    # A noisy caller does not use up anyone else's allowance.
    assert [limiter.admit("checkout") for _ in range(2)] == [0.0, 0.0]
    assert limiter.admit("orders") > 0.0
    assert limiter.rejected == {"destination": 0, "source": 2}


def test_a_caller_over_its_own_limit_does_not_drain_the_shared_bucket():
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(total=TokenBucketSpec(1, 3), per_source=TokenBucketSpec(1, 1)), clock)
    assert limiter.admit("orders") == 0.0
    for _ in range(10):
        assert limiter.admit("orders") > 0.0
    assert limiter.admit("checkout") == 0.0
    assert limiter.admit("frontend") == 0.0
    assert limiter.admit("search") > 0.0
    assert limiter.rejected_scope == "destination"
    assert limiter.rejected == {"destination": 1, "source": 10}


def test_retry_after_waits_for_both_buckets():
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(total=TokenBucketSpec(1, 1), per_source=TokenBucketSpec(0.5, 1)), clock)
    assert limiter.admit("orders") == 0.0
    assert limiter.admit("orders") == pytest.approx(2.0)
    assert limiter.rejected_scope == "source"


def test_source_buckets_are_bounded_and_the_least_recently_used_goes_first():
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(per_source=TokenBucketSpec(1, 1)), clock, max_sources=2)
    limiter.admit("a")
    limiter.admit("b")
    assert limiter.admit("a") > 0.0  # touches a: b is now the oldest
    limiter.admit("c")
    assert limiter.sources == 2
    assert limiter.evicted_total == 1
    assert limiter.admit("a") > 0.0  # a was kept, still empty
    assert limiter.admit("b") == 0.0  # b was dropped and comes back full


def test_no_limit_configured_admits_everything():
    limiter = RateLimiter(RateLimit(), FakeClock())
    assert all(limiter.admit("orders") == 0.0 for _ in range(10_000))
    assert limiter.sources == 0
