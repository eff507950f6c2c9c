"""Fault injection: delay and abort on their percentages, decided independently."""

from __future__ import annotations

import random

import pytest

from proxies.policy.schema import AbortFault, DelayFault, Fault
from proxies.traffic.faults import FaultDecision, decide

N = 20_000


def tally(fault: Fault, seed: int = 42) -> tuple[int, int, int]:
    rng = random.Random(seed)
    delayed = aborted = both = 0
    for _ in range(N):
        decision = decide(fault, rng)
        if decision is None:
            continue
        delayed += decision.delay_s > 0
        aborted += decision.abort_status is not None
        both += decision.delay_s > 0 and decision.abort_status is not None
    return delayed, aborted, both


@pytest.mark.parametrize("percent", [1.0, 10.0, 50.0, 90.0])
def test_a_delay_hits_its_percentage(percent):
    delayed, aborted, _ = tally(Fault(delay=DelayFault(fixed_ms=100, percent=percent)))
    assert delayed / N * 100 == pytest.approx(percent, abs=1.0)
    assert aborted == 0


@pytest.mark.parametrize("percent", [1.0, 10.0, 50.0, 90.0])
def test_an_abort_hits_its_percentage(percent):
    delayed, aborted, _ = tally(Fault(abort=AbortFault(status=503, percent=percent)))
    assert aborted / N * 100 == pytest.approx(percent, abs=1.0)
    assert delayed == 0


def test_delay_and_abort_are_decided_independently():
    delayed, aborted, both = tally(
        Fault(delay=DelayFault(fixed_ms=5, percent=50.0), abort=AbortFault(status=500, percent=20.0))
    )
    assert delayed / N == pytest.approx(0.50, abs=0.01)
    assert aborted / N == pytest.approx(0.20, abs=0.01)
    assert both / N == pytest.approx(0.50 * 0.20, abs=0.01)  # the product: independent


def test_zero_percent_never_hits_and_a_hundred_always_does():
    never = Fault(delay=DelayFault(fixed_ms=5, percent=0.0), abort=AbortFault(status=500, percent=0.0))
    always = Fault(delay=DelayFault(fixed_ms=250, percent=100.0), abort=AbortFault(status=503, percent=100.0))
    rng = random.Random(1)
    assert all(decide(never, rng) is None for _ in range(N))
    assert all(decide(always, rng) == FaultDecision(0.25, 503) for _ in range(N))


def test_no_fault_decides_nothing():
    assert decide(None, random.Random(0)) is None
    assert decide(Fault(), random.Random(0)) is None


def test_a_seeded_rng_gives_the_same_decisions():
    fault = Fault(delay=DelayFault(fixed_ms=5, percent=30.0), abort=AbortFault(status=500, percent=30.0))
    first, second = random.Random(9), random.Random(9)
    assert [decide(fault, first) for _ in range(100)] == [decide(fault, second) for _ in range(100)]
