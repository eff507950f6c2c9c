"""Policy retries: which outcomes retry, which requests can be replayed, backoff, the budget."""

from __future__ import annotations

import random
import statistics

import pytest

from proxies.policy.schema import Retries
from proxies.policy.schema import RetryBudget as RetryBudgetConfig
from proxies.traffic import retry
from proxies.traffic.retry import RetryBudget, backoff_s, may_replay, retry_condition
from tests.clock import FakeClock

DEFAULT = Retries()
ONLY_CONNECT = Retries(retry_on=frozenset({"connect-failure"}))
ONLY_RESET = Retries(retry_on=frozenset({"reset"}))
NOTHING = Retries(retry_on=frozenset())
WITH_500_AND_429 = Retries(statuses=frozenset({500, 429}))


@pytest.mark.parametrize(
    ("status", "error", "retries", "condition"),
    [
        (None, "connect-failure", DEFAULT, "connect-failure"),
        (None, "refused-stream", DEFAULT, "refused-stream"),
        (None, "reset", DEFAULT, "gateway-error"),  # a reset is a 502 from the proxy
        (None, "per-try-timeout", DEFAULT, "gateway-error"),  # a 504 from the proxy
        (None, "reset", ONLY_RESET, "reset"),
        (None, "connect-failure", ONLY_RESET, "reset"),  # no response at all
        (None, "per-try-timeout", ONLY_CONNECT, None),
        (None, "reset", ONLY_CONNECT, None),
        (None, "connect-failure", ONLY_CONNECT, "connect-failure"),
        (None, "connect-failure", NOTHING, None),
        (502, None, DEFAULT, "gateway-error"),
        (503, None, DEFAULT, "gateway-error"),
        (504, None, DEFAULT, "gateway-error"),
        (500, None, DEFAULT, None),
        (200, None, DEFAULT, None),
        (404, None, DEFAULT, None),
        (503, None, ONLY_CONNECT, None),
        (500, None, WITH_500_AND_429, "retriable-status-codes"),
        (429, None, WITH_500_AND_429, "retriable-status-codes"),
        (501, None, WITH_500_AND_429, None),
        (502, None, WITH_500_AND_429, "gateway-error"),
        (None, None, DEFAULT, None),
    ],
)
def test_retry_condition_names_the_condition_an_outcome_meets(status, error, retries, condition):
    assert retry_condition(status, error, retries) == condition


def test_a_configured_status_retries_even_without_gateway_error():
    retries = Retries(retry_on=frozenset({"connect-failure"}), statuses=frozenset({503}))
    assert retry_condition(503, None, retries) == "retriable-status-codes"


ALLOW_POST = Retries(retry_non_idempotent=True)
SMALL_BUFFER = Retries(max_buffered_body_bytes=100)


@pytest.mark.parametrize(
    ("method", "has_body", "buffered_ok", "retries", "body_bytes", "replay"),
    [
        ("GET", False, False, DEFAULT, None, True),
        ("POST", False, False, DEFAULT, None, True),  # nothing to replay: the request line only
        ("GET", True, True, DEFAULT, 10, True),
        ("PUT", True, True, DEFAULT, 10, True),
        ("DELETE", True, True, DEFAULT, None, True),
        ("POST", True, True, DEFAULT, 10, False),
        ("PATCH", True, True, DEFAULT, 10, False),
        ("POST", True, True, ALLOW_POST, 10, True),
        ("GET", True, False, DEFAULT, None, False),  # body not kept: cannot replay
        ("POST", True, False, ALLOW_POST, None, False),
        ("GET", True, True, SMALL_BUFFER, 101, False),  # body over the limit
        ("GET", True, True, SMALL_BUFFER, 100, True),
        ("GET", True, True, DEFAULT, 65536, True),
        ("GET", True, True, DEFAULT, 65537, False),
        (b"GET", True, True, DEFAULT, 10, True),  # http1 hands over bytes
        (b"POST", True, True, DEFAULT, 10, False),
    ],
)
def test_may_replay_a_body_only_when_buffered_within_the_limit_and_idempotent_or_allowed(
    method, has_body, buffered_ok, retries, body_bytes, replay
):
    assert may_replay(method, has_body, buffered_ok, retries, body_bytes) is replay


def test_backoff_stays_within_zero_and_the_capped_exponential_ceiling():
    rng = random.Random(7)
    for attempt in range(12):
        ceiling = min(0.250, 0.025 * 2**attempt)
        for _ in range(500):
            assert 0.0 <= backoff_s(attempt, 25.0, 250.0, rng) <= ceiling


def test_backoff_mean_grows_with_the_attempt_until_the_cap():
    rng = random.Random(11)
    means = [statistics.fmean(backoff_s(n, 25.0, 250.0, rng) for _ in range(4000)) for n in range(5)]
    assert means == sorted(means)
    # Full jitter: the mean is half the ceiling (12.5, 25, 50, 100, 125 ms).
    for mean, ceiling in zip(means, [0.025, 0.050, 0.100, 0.200, 0.250], strict=True):
        assert mean == pytest.approx(ceiling / 2, rel=0.05)


def test_backoff_of_a_huge_attempt_is_capped_not_an_overflow():
    assert 0.0 <= backoff_s(10_000, 25.0, 250.0, random.Random(1)) <= 0.250


def test_backoff_is_jittered_not_fixed():
    rng = random.Random(3)
    assert len({backoff_s(2, 25.0, 250.0, rng) for _ in range(20)}) == 20


def run_outage(budget: RetryBudget, clock: FakeClock, requests: int, seconds: float) -> int:
    """Send ``requests`` evenly over ``seconds``, each failing and wanting 2 retries."""
    retries = 0
    step = seconds / requests
    for _ in range(requests):
        budget.on_request()
        for _ in range(2):
            if budget.can_retry():
                budget.on_retry()
                retries += 1
        clock.advance(step)
    return retries


def test_the_budget_stops_retries_during_a_total_outage():
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetConfig(percent=20.0, min_per_second=10.0, window_s=10.0), clock)
    retries = run_outage(budget, clock, requests=1000, seconds=10.0)
    # Without the budget every request would retry twice: 2000 retries on a dead service.
    assert retries <= max(0.20 * 1000, 10.0 * 10.0)
    assert retries >= 190  # and the budget is spent, not withheld
    assert budget.exhausted_total == 2000 - retries
    assert budget.retries_total == retries


def test_the_budget_keeps_to_its_percent_over_a_long_outage():
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetConfig(), clock)
    retries = run_outage(budget, clock, requests=6000, seconds=60.0)
    # 100 requests a second: 20 retries a second over the minute, not 200.
    assert retries <= 0.20 * 6000 + 10 * 10  # at most one window's worth of slack
    assert retries >= 0.20 * 6000 * 0.9


def test_the_budget_always_allows_the_minimum_per_second_at_low_traffic():
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetConfig(percent=20.0, min_per_second=10.0, window_s=10.0), clock)
    retries = run_outage(budget, clock, requests=50, seconds=10.0)
    # 20% of 50 is 10, but the floor of 10/s over the 10 s window allows 100: all 100 asked.
    assert retries == 100


def test_the_budget_refills_once_the_window_has_passed():
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetConfig(percent=20.0, min_per_second=10.0, window_s=10.0), clock)
    run_outage(budget, clock, requests=1000, seconds=10.0)
    budget.on_request()
    assert not budget.can_retry()
    clock.advance(10.0)
    assert budget.can_retry()
    retries = run_outage(budget, clock, requests=10, seconds=1.0)
    assert retries == 20  # within the minimum again


def test_retries_spent_long_ago_no_longer_count():
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetConfig(percent=0.0, min_per_second=1.0, window_s=10.0), clock)
    for _ in range(10):
        assert budget.can_retry()
        budget.on_retry()
    assert not budget.can_retry()
    clock.advance(5.0)
    assert not budget.can_retry()  # still in the window
    clock.advance(5.0)
    assert budget.can_retry()


def test_the_budget_state_reports_the_window():
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetConfig(), clock)
    for _ in range(1000):
        budget.on_request()
    budget.on_retry()
    assert budget.state() == {
        "requests_in_window": 1000,
        "retries_in_window": 1,
        "allowed_in_window": 200.0,
        "exhausted_total": 0,
    }


def test_the_transport_retry_decisions_are_unchanged():
    assert retry.retry_on_fresh_connection(True, False, True, True)
    assert not retry.retry_on_fresh_connection(True, True, True, True)
    assert not retry.retry_on_fresh_connection(False, False, True, True)
    assert retry.REPLAY_LIMIT == Retries().max_buffered_body_bytes
