"""The router: ordered match rules first, then an exact smooth weighted round robin split."""

from __future__ import annotations

from collections import Counter

from proxies.policy.parser import parse_policy
from proxies.traffic.router import Router

NO_HEADERS: dict[bytes, bytes] = {}


def router(service: dict) -> Router:
    return Router(parse_policy({"services": {"payments": service}}).for_service("payments"))


def versions(r: Router, n: int, headers: dict[bytes, bytes] = NO_HEADERS) -> list[str | None]:
    return [r.route("GET", "/", headers).version for _ in range(n)]


def test_without_a_split_any_version_serves_under_the_default_route():
    decision = router({}).route("GET", "/items", NO_HEADERS)
    assert (decision.route_name, decision.version, decision.fault, decision.retriable) == (
        "default",
        None,
        None,
        True,
    )


def test_a_90_10_split_lands_within_one_point_over_20000_requests():
    counts = Counter(versions(router({"split": {"v1": 90, "v2": 10}}), 20_000))
    assert abs(counts["v1"] / 20_000 - 0.90) <= 0.01
    assert abs(counts["v2"] / 20_000 - 0.10) <= 0.01


def test_smooth_weighted_round_robin_is_exact_over_every_window_of_ten():
    picks = versions(router({"split": {"v1": 90, "v2": 10}}), 1000)
    for start in range(0, len(picks) - 10):
        assert picks[start : start + 10].count("v2") == 1, start


def test_smooth_weighted_round_robin_interleaves_rather_than_bursting():
    picks = versions(router({"split": {"v1": 50, "v2": 30, "v3": 20}}), 10)
    assert Counter(picks) == {"v1": 5, "v2": 3, "v3": 2}
    assert all(a != b or a == "v1" for a, b in zip(picks, picks[1:], strict=False))


def test_fractional_weights_stay_exact_over_their_period():
    picks = versions(router({"split": {"v1": 33.3, "v2": 66.7}}), 1000)
    assert Counter(picks) == {"v1": 333, "v2": 667}


def test_a_version_with_weight_zero_never_serves():
    assert set(versions(router({"split": {"v1": 100, "v2": 0}}), 50)) == {"v1"}


def test_a_header_match_wins_over_the_weights():
    r = router(
        {
            "split": {"v1": 100, "v2": 0},
            "routes": [{"name": "canary", "match": {"headers": {"x-canary": "1"}}, "split": {"v2": 100}}],
        }
    )
    canary = r.route("GET", "/", {b"x-canary": b"1"})
    assert (canary.route_name, canary.version) == ("canary", "v2")
    other = r.route("GET", "/", {b"x-canary": b"0"})
    assert (other.route_name, other.version) == ("default", "v1")


def test_headers_may_be_given_as_a_lookup_function():
    r = router({"routes": [{"name": "canary", "match": {"headers": {"x-canary": 1}}, "split": {"v2": 100}}]})
    seen: list[bytes] = []

    def lookup(name: bytes) -> bytes | None:
        seen.append(name)
        return b"1" if name == b"x-canary" else None

    assert r.route("GET", "/", lookup).version == "v2" and seen == [b"x-canary"]


def test_every_header_of_a_rule_must_match():
    r = router(
        {"routes": [{"name": "both", "match": {"headers": {"a": "1", "b": "2"}}, "split": {"v2": 100}}]}
    )
    assert r.route("GET", "/", {b"a": b"1"}).route_name == "default"
    assert r.route("GET", "/", {b"a": b"1", b"b": b"2"}).route_name == "both"


def test_path_prefix_and_method_must_both_match():
    r = router({"routes": [{"name": "writes", "match": {"path_prefix": "/pay", "method": "POST"}}]})
    assert r.route("POST", "/pay/42", NO_HEADERS).route_name == "writes"
    assert r.route("GET", "/pay/42", NO_HEADERS).route_name == "default"
    assert r.route("POST", "/refund", NO_HEADERS).route_name == "default"


def test_the_first_matching_route_wins():
    r = router(
        {
            "routes": [
                {"name": "api", "match": {"path_prefix": "/api"}, "split": {"v1": 100}},
                {"name": "api-v2", "match": {"path_prefix": "/api/v2"}, "split": {"v2": 100}},
            ]
        }
    )
    decision = r.route("GET", "/api/v2/items", NO_HEADERS)
    assert (decision.route_name, decision.version) == ("api", "v1")


def test_an_empty_match_matches_every_request():
    r = router({"routes": [{"name": "all"}]})
    assert r.route("DELETE", "/anything", NO_HEADERS).route_name == "all"


def test_a_route_without_its_own_split_uses_the_services_split():
    r = router({"split": {"v1": 50, "v2": 50}, "routes": [{"name": "slow", "match": {"path_prefix": "/s"}}]})
    assert Counter(r.route("GET", "/s", NO_HEADERS).version for _ in range(10)) == {"v1": 5, "v2": 5}


def test_a_route_with_a_fault_is_not_retriable():
    r = router(
        {
            "routes": [
                {"name": "chaos", "match": {"path_prefix": "/chaos"}, "fault": {"abort": {"status": 503}}},
                {"name": "calm", "match": {"path_prefix": "/calm"}},
            ]
        }
    )
    chaos = r.route("GET", "/chaos", NO_HEADERS)
    assert chaos.retriable is False and chaos.fault is not None and chaos.fault.abort is not None
    assert chaos.fault.abort.status == 503 and chaos.fault.abort.percent == 100.0
    calm = r.route("GET", "/calm", NO_HEADERS)
    assert calm.retriable is True and calm.fault is None


def test_a_decision_is_built_once_and_reused():
    r = router({"split": {"v1": 50, "v2": 50}})
    first = [r.route("GET", "/", NO_HEADERS) for _ in range(2)]
    again = [r.route("GET", "/", NO_HEADERS) for _ in range(2)]
    assert [id(d) for d in first] == [id(d) for d in again]
