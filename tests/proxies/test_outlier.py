"""Outlier detection with Envoy's semantics: consecutive errors, ejection times, limits, panic."""

from __future__ import annotations

import random

from proxies.mesh.endpoints import Endpoint, EndpointRegistry
from proxies.policy.schema import OutlierDetection, PeakEwma
from proxies.traffic.balancer import make_balancer
from proxies.traffic.outlier import OutlierDetector
from tests.clock import FakeClock


def hosts(n: int) -> list[Endpoint]:
    return [Endpoint("payments", f"p{i}", "v1", "127.0.0.1", 9000 + i) for i in range(n)]


def detector(n: int = 3, **config: object) -> tuple[OutlierDetector, list[Endpoint], FakeClock]:
    clock = FakeClock()
    endpoints = hosts(n)
    return OutlierDetector(OutlierDetection(**config), clock, endpoints), endpoints, clock  # type: ignore[arg-type]


def fail(od: OutlierDetector, endpoint: Endpoint, times: int, status: int | None = 500):  # type: ignore[no-untyped-def]
    """Report ``times`` failures; return the last result (the ejection, if one happened)."""
    result = None
    for _ in range(times):
        result = od.on_result(endpoint, status, False)
    return result


def test_five_consecutive_5xx_eject_a_host_for_30_seconds() -> None:
    od, (a, b, c), clock = detector()
    assert fail(od, a, 4) is None
    ejection = fail(od, a, 1)
    assert ejection is not None
    assert (ejection.endpoint, ejection.reason, ejection.duration_s) == (a, "consecutive_5xx", 30.0)
    assert a.ejected_until == clock.now + 30.0
    assert od.eligible([a, b, c]) == ([b, c], False)
    clock.advance(29.9)
    assert od.sweep() == []
    clock.advance(0.1)
    assert od.sweep() == [a]
    assert od.eligible([a, b, c]) == ([a, b, c], False)
    assert od.ejections_total == 1


def test_the_second_ejection_lasts_60_seconds() -> None:
    od, (a, _, _), clock = detector()
    fail(od, a, 5)
    clock.advance(30.0)
    assert od.sweep() == [a]
    clock.advance(1.0)
    ejection = fail(od, a, 5)
    assert ejection is not None and ejection.duration_s == 60.0 and ejection.times_ejected == 2


def test_ejection_time_grows_by_the_base_and_is_capped_at_300_seconds() -> None:
    od, (a, _, _), clock = detector()
    durations = []
    for _ in range(12):
        ejection = fail(od, a, 5)
        assert ejection is not None
        durations.append(ejection.duration_s)
        clock.now = ejection.until
        assert od.sweep() == [a]
    assert durations == [30.0, 60.0, 90.0, 120.0, 150.0, 180.0, 210.0, 240.0, 270.0, 300.0, 300.0, 300.0]
    assert a.times_ejected == 10  # stops growing at the cap


def test_each_healthy_sweep_lowers_the_ejection_multiplier() -> None:
    od, (a, _, _), clock = detector()
    fail(od, a, 5)
    clock.advance(30.0)
    od.sweep()  # returns it; the multiplier stays for now
    assert a.times_ejected == 1
    clock.advance(10.0)
    od.sweep()  # found in service: forgiven one ejection
    assert a.times_ejected == 0
    ejection = fail(od, a, 5)
    assert ejection is not None and ejection.duration_s == 30.0


def test_a_success_resets_the_consecutive_count() -> None:
    od, (a, _, _), _ = detector()
    fail(od, a, 4)
    assert od.on_result(a, 200, False) is None
    assert a.consecutive_5xx == 0
    assert fail(od, a, 4) is None
    assert fail(od, a, 1) is not None


def test_4xx_responses_are_successes_for_outlier_detection() -> None:
    od, (a, _, _), _ = detector()
    fail(od, a, 4)
    od.on_result(a, 404, False)
    assert fail(od, a, 4) is None


def test_a_failure_with_no_response_counts_as_a_5xx() -> None:
    od, (a, _, _), _ = detector()
    assert fail(od, a, 5, status=None) is not None


def test_with_three_hosts_and_max_ten_percent_exactly_one_host_is_ejected() -> None:
    od, (a, b, c), _ = detector()
    assert fail(od, a, 5) is not None  # none ejected yet: always allowed, though 1/3 > 10%
    assert fail(od, b, 5) is None
    assert fail(od, c, 5) is None
    assert [bool(e.ejected_until) for e in (a, b, c)] == [True, False, False]
    assert od.ejections_overflow == 2
    assert od.counters()["ejections_active"] == 1


def test_max_ejection_percent_counts_the_host_about_to_be_ejected() -> None:
    od, endpoints, _ = detector(20)  # 10% of 20 is 2
    results = [fail(od, e, 5) for e in endpoints[:3]]
    assert [r is not None for r in results] == [True, True, False]


def test_an_overflowed_host_is_ejected_once_there_is_room() -> None:
    od, (a, b, _), clock = detector()
    fail(od, a, 5)
    assert fail(od, b, 5) is None  # overflow; the count that fired starts again (Envoy)
    assert b.consecutive_5xx == 0
    clock.advance(30.0)
    od.sweep()
    assert fail(od, b, 5) is not None


def test_panic_mode_spreads_load_across_all_hosts_when_most_are_ejected() -> None:
    od, endpoints, _ = detector(4, max_ejection_percent=100.0)
    for endpoint in endpoints[:3]:
        fail(od, endpoint, 5)
    eligible, panic = od.eligible(endpoints)
    assert panic and list(eligible) == endpoints
    lb = make_balancer("round_robin", PeakEwma(), FakeClock(), random.Random(1))
    assert {lb.pick(eligible) for _ in range(8)} == set(endpoints)
    assert od.panic_total == 1


def test_exactly_half_healthy_is_not_panic() -> None:
    od, endpoints, _ = detector(4, max_ejection_percent=100.0)
    for endpoint in endpoints[:2]:
        fail(od, endpoint, 5)
    assert od.eligible(endpoints) == (endpoints[2:], False)


def test_panic_is_judged_on_the_subset_the_caller_balances_over() -> None:
    od, endpoints, _ = detector(4, max_ejection_percent=100.0)
    fail(od, endpoints[0], 5)
    subset = endpoints[:2]  # one version: half of it ejected, not below 50%
    assert od.eligible(subset) == ([endpoints[1]], False)


def test_nothing_ejected_returns_the_same_sequence_without_copying() -> None:
    od, endpoints, _ = detector()
    assert od.eligible(endpoints)[0] is endpoints


def test_a_host_already_ejected_is_not_ejected_again_in_panic_mode() -> None:
    od, (a,), clock = detector(1)
    fail(od, a, 5)
    until = a.ejected_until
    assert fail(od, a, 10) is None
    assert a.ejected_until == until and od.ejections_total == 1


def test_gateway_errors_are_not_counted_for_ejection_unless_enabled() -> None:
    od, (a, _, _), _ = detector(consecutive_5xx=None)
    assert fail(od, a, 20, status=502) is None
    assert not a.ejected_until


def test_consecutive_gateway_errors_eject_when_enabled() -> None:
    od, (a, _, _), _ = detector(consecutive_5xx=None, consecutive_gateway_errors=3)
    assert fail(od, a, 2, status=503) is None
    ejection = fail(od, a, 1, status=504)
    assert ejection is not None and ejection.reason == "consecutive_gateway_errors"
    assert od.ejections_by_reason["consecutive_gateway_errors"] == 1


def test_a_5xx_that_is_not_a_gateway_error_resets_the_gateway_count() -> None:
    od, (a, _, _), _ = detector(consecutive_5xx=None, consecutive_gateway_errors=3)
    fail(od, a, 2, status=502)
    od.on_result(a, 500, False)
    assert fail(od, a, 2, status=502) is None
    assert fail(od, a, 1, status=None) is not None  # no response: a gateway error too


def test_a_timeout_the_sidecar_answered_counts_as_a_gateway_error() -> None:
    od, (a, _, _), _ = detector(consecutive_5xx=None, consecutive_gateway_errors=2)
    od.on_result(a, 504, True)
    assert od.on_result(a, 504, True) is not None


def test_returning_to_service_resets_the_consecutive_counts() -> None:
    od, (a,), clock = detector(1)
    fail(od, a, 5)
    fail(od, a, 3)  # counted while out (panic traffic)
    clock.advance(30.0)
    od.sweep()
    assert (a.consecutive_5xx, a.consecutive_gateway) == (0, 0)
    assert fail(od, a, 4) is None


def test_a_passing_health_check_returns_a_host_early() -> None:
    od, (a, b, c), _ = detector()
    fail(od, a, 5)
    od.on_health(a, False)
    assert a.ejected_until
    od.on_health(a, True)
    assert od.eligible([a, b, c]) == ([a, b, c], False)
    assert od.unejections_total == 1


def test_state_reports_counts_and_the_ejection() -> None:
    od, (a, _, _), clock = detector()
    fail(od, a, 5)
    clock.advance(10.0)
    state = od.state(a)
    assert state["ejected"] and state["ejected_until"] == 1030.0
    assert state["ejected_remaining_s"] == 20.0
    assert (state["times_ejected"], state["consecutive_5xx"]) == (1, 0)


def test_outlier_state_survives_an_endpoints_swap() -> None:
    registry = EndpointRegistry()
    spec = {"payments": [{"instance": "p1", "version": "v1", "address": "127.0.0.1:9001"}]}
    registry.apply(1, spec)
    first = registry.snapshot.services["payments"].endpoints
    od = OutlierDetector(OutlierDetection(), FakeClock(), first)
    fail(od, first[0], 5)
    registry.apply(2, spec)
    again = registry.snapshot.services["payments"].endpoints
    od.set_hosts(again)
    assert again[0] is first[0] and again[0].ejected_until and again[0].times_ejected == 1
