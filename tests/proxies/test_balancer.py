"""Load balancers: round robin, least request (power of two choices), Linkerd's peak-EWMA."""

from __future__ import annotations

import math
import random

import pytest

from proxies.mesh.endpoints import Endpoint
from proxies.policy.schema import PeakEwma
from proxies.traffic.balancer import decayed, make_balancer, observe_rtt
from tests.clock import FakeClock


def hosts(n: int) -> list[Endpoint]:
    return [Endpoint("payments", f"p{i}", "v1", "127.0.0.1", 9000 + i) for i in range(n)]


def balancer(kind: str, clock: FakeClock | None = None, seed: int = 7):  # type: ignore[no-untyped-def]
    return make_balancer(kind, PeakEwma(), clock or FakeClock(100.0), random.Random(seed))  # type: ignore[arg-type]


KINDS = ["round_robin", "least_request", "peak_ewma"]


@pytest.mark.parametrize("kind", KINDS)
def test_no_instances_means_no_pick(kind: str) -> None:
    assert balancer(kind).pick([]) is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_single_instance_is_always_picked(kind: str) -> None:
    (a,) = hosts(1)
    assert [balancer(kind).pick([a]) for _ in range(3)] == [a, a, a]


def test_round_robin_cycles_exactly() -> None:
    a, b, c = endpoints = hosts(3)
    rr = balancer("round_robin")
    assert [rr.pick(endpoints) for _ in range(7)] == [a, b, c, a, b, c, a]


@pytest.mark.parametrize("kind", KINDS)
def test_a_retry_goes_to_an_instance_not_tried_yet(kind: str) -> None:
    a, b, c = endpoints = hosts(3)
    lb = balancer(kind)
    for _ in range(50):
        assert lb.pick(endpoints, exclude=(a,)) in (b, c)
        assert lb.pick(endpoints, exclude={a, c}) is b


@pytest.mark.parametrize("kind", KINDS)
def test_a_retry_reuses_a_tried_instance_only_when_no_other_exists(kind: str) -> None:
    a, b = endpoints = hosts(2)
    assert balancer(kind).pick(endpoints, exclude=(a, b)) in (a, b)
    assert balancer(kind).pick([a], exclude=(a,)) is a


def test_least_request_prefers_the_less_loaded_of_two() -> None:
    a, b = endpoints = hosts(2)
    a.outstanding = 3
    lb = balancer("least_request")
    assert {lb.pick(endpoints) for _ in range(50)} == {b}


def test_least_request_never_picks_the_most_loaded_of_three() -> None:
    a, b, c = endpoints = hosts(3)
    a.outstanding, b.outstanding, c.outstanding = 9, 0, 1
    lb = balancer("least_request")
    picks = [lb.pick(endpoints) for _ in range(300)]
    assert a not in picks
    # b wins whenever it is drawn (2 of 3 pairs), c only in the pair (a, c).
    assert picks.count(b) > picks.count(c) > 0


def test_least_request_picks_are_random_between_equal_instances() -> None:
    endpoints = hosts(4)
    lb = balancer("least_request")
    assert set(lb.pick(endpoints) for _ in range(200)) == set(endpoints)


def test_on_start_and_on_finish_count_outstanding_requests() -> None:
    (a,) = hosts(1)
    lb = balancer("least_request")
    lb.on_start(a)
    lb.on_start(a)
    lb.on_finish(a, 0.01, True)
    assert a.outstanding == 1
    lb.on_finish(a, 0.01, True)
    lb.on_finish(a, 0.01, True)  # a stray finish never goes negative
    assert a.outstanding == 0


def test_a_higher_rtt_sample_replaces_the_estimate_at_once() -> None:
    assert observe_rtt(0.03, 0.0, 0.5, 0.001, 10.0) == 0.5


def test_a_lower_rtt_sample_decays_in_with_the_time_since_the_last_update() -> None:
    keep = math.exp(-5.0 / 10.0)
    assert observe_rtt(0.5, 0.0, 0.01, 5.0, 10.0) == pytest.approx(0.5 * keep + 0.01 * (1 - keep))
    assert observe_rtt(0.5, 5.0, 0.01, 5.0, 10.0) == 0.5  # no time passed: no weight


def test_an_unread_estimate_decays_towards_zero() -> None:
    assert decayed(0.5, 0.0, 10.0, 10.0) == pytest.approx(0.5 / math.e)


def test_peak_ewma_starts_every_instance_at_the_default_rtt() -> None:
    clock = FakeClock(100.0)
    a, b = endpoints = hosts(2)
    balancer("peak_ewma", clock).pick(endpoints)
    assert a.ewma_s == b.ewma_s == pytest.approx(0.030)


def test_peak_ewma_weighs_outstanding_requests() -> None:
    a, b = endpoints = hosts(2)
    lb = balancer("peak_ewma")
    a.outstanding = 1  # same estimate, so cost 2x
    assert {lb.pick(endpoints) for _ in range(20)} == {b}


def test_a_fast_failure_does_not_make_an_instance_look_faster() -> None:
    clock = FakeClock(100.0)
    (a,) = hosts(1)
    lb = balancer("peak_ewma", clock)
    lb.on_start(a)
    clock.advance(5.0)
    lb.on_finish(a, 0.0001, False)
    assert a.ewma_s == pytest.approx(0.030)


def run(lb, endpoints, rtts, clock, n, gap=0.1):  # type: ignore[no-untyped-def]
    """n scripted requests, one at a time: pick, wait its RTT, finish; then ``gap`` idle."""
    picked = []
    for _ in range(n):
        endpoint = lb.pick(endpoints)
        lb.on_start(endpoint)
        rtt = rtts[endpoint.instance]
        clock.advance(rtt)
        lb.on_finish(endpoint, rtt, True)
        clock.advance(gap)
        picked.append(endpoint.instance)
    return picked


def test_peak_ewma_moves_traffic_away_from_a_slow_instance_and_back_after_decay() -> None:
    clock = FakeClock(100.0)
    endpoints = hosts(2)
    lb = balancer("peak_ewma", clock)
    rtts = {"p0": 0.010, "p1": 0.500}
    slow_phase = run(lb, endpoints, rtts, clock, 200)  # 20 s of traffic
    assert slow_phase.count("p1") <= 2  # one peak sample keeps it out for a decay period or more
    rtts["p1"] = 0.010  # it recovers; the decayed estimate lets a request probe it again
    recovered = run(lb, endpoints, rtts, clock, 600)
    assert 0.3 <= recovered[-200:].count("p1") / 200 <= 0.7


def test_peak_ewma_keeps_a_slow_instance_mostly_idle_while_it_stays_slow() -> None:
    clock = FakeClock(100.0)
    endpoints = hosts(2)
    lb = balancer("peak_ewma", clock)
    picked = run(lb, endpoints, {"p0": 0.010, "p1": 0.500}, clock, 1000)  # 100 s
    # It is probed now and then (once its peak has decayed below the fast one's), never more.
    assert 1 <= picked.count("p1") <= 10
