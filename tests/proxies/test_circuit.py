"""Connection-pool circuit breaking: Envoy's four thresholds fail fast and recover."""

from __future__ import annotations

import pytest

from proxies.policy.schema import CircuitBreaker as CircuitBreakerConfig
from proxies.traffic.circuit import CircuitBreaker

PAIRS = [
    ("max_connections", "try_connection", "end_connection"),
    ("max_pending_requests", "try_pending", "end_pending"),
    ("max_requests", "try_request", "end_request"),
    ("max_retries", "try_retry", "end_retry"),
]


def breaker_with(limit: str, value: int) -> CircuitBreaker:
    return CircuitBreaker(CircuitBreakerConfig(**{limit: value}))


@pytest.mark.parametrize(("limit", "take", "give"), PAIRS)
def test_each_limit_fails_fast_at_the_limit_and_counts_the_overflow(limit, take, give):
    breaker = breaker_with(limit, 3)
    assert [getattr(breaker, take)() for _ in range(5)] == [True, True, True, False, False]
    assert breaker.overflow[limit] == 2
    assert sum(breaker.overflow.values()) == 2  # only that limit overflowed


@pytest.mark.parametrize(("limit", "take", "give"), PAIRS)
def test_each_limit_recovers_after_end(limit, take, give):
    breaker = breaker_with(limit, 2)
    getattr(breaker, take)()
    getattr(breaker, take)()
    assert not getattr(breaker, take)()
    getattr(breaker, give)()
    assert getattr(breaker, take)()
    assert not getattr(breaker, take)()


@pytest.mark.parametrize(("limit", "take", "give"), PAIRS)
def test_a_stray_end_never_makes_a_count_negative_or_opens_room(limit, take, give):
    breaker = breaker_with(limit, 1)
    for _ in range(3):
        getattr(breaker, give)()
    assert breaker.usage()[limit]["active"] == 0
    assert getattr(breaker, take)()
    assert not getattr(breaker, take)()


def test_envoys_default_thresholds():
    breaker = CircuitBreaker(CircuitBreakerConfig())
    assert sum(breaker.try_request() for _ in range(2000)) == 1024
    assert sum(breaker.try_retry() for _ in range(10)) == 3
    assert breaker.overflow == {
        "max_connections": 0,
        "max_pending_requests": 0,
        "max_requests": 976,
        "max_retries": 7,
    }


def test_a_zero_limit_admits_nothing():
    breaker = breaker_with("max_retries", 0)
    assert not breaker.try_retry()
    assert breaker.overflow["max_retries"] == 1


def test_new_limits_apply_to_the_next_try_and_counts_carry_over():
    breaker = breaker_with("max_requests", 4)
    for _ in range(3):
        breaker.try_request()
    breaker.config = CircuitBreakerConfig(max_requests=2)
    assert not breaker.try_request()
    breaker.end_request()
    assert not breaker.try_request()  # 2 still in flight
    breaker.end_request()
    assert breaker.try_request()


def test_usage_reports_live_counts_against_limits():
    breaker = CircuitBreaker(CircuitBreakerConfig(max_connections=8))
    breaker.try_connection()
    breaker.try_pending()
    breaker.try_pending()
    assert breaker.usage()["max_connections"] == {"active": 1, "limit": 8}
    assert breaker.usage()["max_pending_requests"] == {"active": 2, "limit": 1024}
