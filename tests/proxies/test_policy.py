"""The policy document: defaults are the anchors' numbers, every rejection names its field."""

from __future__ import annotations

import json

import pytest

from proxies.config import parse_config
from proxies.policy.parser import load_policy_file, parse_policy, policy_as_dict
from proxies.policy.schema import (
    AbortFault,
    DelayFault,
    Fault,
    Match,
    Policy,
    PolicyError,
    ServicePolicy,
    TokenBucketSpec,
)

PAYMENTS = {"payments": frozenset({"v1", "v2"})}


def rejection(document: dict, known: dict | None = None) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_policy(document, known)
    return caught.value


# defaults -------------------------------------------------------------------------------------


def test_an_empty_document_is_every_default():
    assert parse_policy({}) == Policy()


def test_the_default_load_balancer_is_peak_ewma_with_linkerds_numbers():
    policy = parse_policy({}).default
    assert policy.load_balancer == "peak_ewma"
    assert (policy.peak_ewma.default_rtt_ms, policy.peak_ewma.decay_s) == (30.0, 10.0)


def test_retry_defaults_are_istios_attempts_and_the_issues_backoff_and_budget():
    retries = parse_policy({}).default.retries
    assert retries.attempts == 2
    assert retries.retry_on == {"connect-failure", "refused-stream", "gateway-error"}
    assert (retries.backoff_base_ms, retries.backoff_max_ms) == (25.0, 250.0)
    budget = retries.budget
    assert (budget.percent, budget.min_per_second, budget.window_s) == (20.0, 10.0, 10.0)
    assert retries.max_buffered_body_bytes == 64 * 1024 and retries.retry_non_idempotent is False


def test_circuit_breaker_defaults_are_envoys_thresholds():
    breaker = parse_policy({}).default.circuit_breaker
    assert (breaker.max_connections, breaker.max_pending_requests) == (1024, 1024)
    assert (breaker.max_requests, breaker.max_retries) == (1024, 3)


def test_outlier_detection_defaults_are_envoys():
    outlier = parse_policy({}).default.outlier_detection
    assert outlier.consecutive_5xx == 5 and outlier.consecutive_gateway_errors is None
    assert (outlier.interval_s, outlier.base_ejection_s, outlier.max_ejection_s) == (10.0, 30.0, 300.0)
    assert (outlier.max_ejection_percent, outlier.panic_threshold_percent) == (10.0, 50.0)
    assert outlier.health_check is None


def test_timeouts_default_to_envoys_connect_and_route_timeouts():
    timeouts = parse_policy({}).default.timeouts
    assert (timeouts.connect_ms, timeouts.request_ms, timeouts.per_try_ms) == (1000.0, 15000.0, None)
    assert timeouts.idle_s == 300.0


def test_a_service_not_named_gets_the_default_policy():
    policy = parse_policy({"default": {"retries": {"attempts": 4}}})
    assert policy.for_service("catalog").retries.attempts == 4


# merging --------------------------------------------------------------------------------------


def test_a_service_deep_merges_over_default_which_merges_over_the_dataclass_defaults():
    policy = parse_policy(
        {
            "default": {"retries": {"attempts": 4, "budget": {"percent": 30}}},
            "services": {"payments": {"retries": {"budget": {"window_s": 5}}}},
        }
    )
    retries = policy.services["payments"].retries
    assert retries.attempts == 4
    assert (retries.budget.percent, retries.budget.window_s, retries.budget.min_per_second) == (30, 5, 10)


def test_a_service_split_replaces_the_default_split_rather_than_merging_with_it():
    policy = parse_policy(
        {"default": {"split": {"v1": 100}}, "services": {"payments": {"split": {"v2": 100}}}}
    )
    assert policy.services["payments"].split == (("v2", 100.0),)


def test_null_in_a_service_turns_off_what_the_default_set():
    policy = parse_policy(
        {
            "default": {"rate_limit": {"total": {"requests_per_second": 100}}},
            "services": {"payments": {"rate_limit": {"total": None}}},
        }
    )
    assert policy.services["payments"].rate_limit.total is None
    assert policy.default.rate_limit.total == TokenBucketSpec(100.0, 100.0)


def test_a_full_service_policy_reads_as_documented():
    policy = parse_policy(
        {
            "revision": 7,
            "services": {
                "payments": {
                    "load_balancer": "least_request",
                    "split": {"v1": 90, "v2": 10},
                    "routes": [
                        {
                            "name": "canary",
                            "match": {"path_prefix": "/pay", "method": "post", "headers": {"X-Canary": 1}},
                            "split": {"v2": 100},
                            "fault": {"delay": {"fixed_ms": 50}, "abort": {"status": 503, "percent": 5}},
                        }
                    ],
                    "rate_limit": {"per_source": {"requests_per_second": 10, "burst": 20}},
                }
            },
        },
        PAYMENTS,
    )
    payments = policy.for_service("payments")
    assert policy.revision == 7 and payments.load_balancer == "least_request"
    assert payments.split == (("v1", 90.0), ("v2", 10.0))
    route = payments.routes[0]
    assert route.match == Match("/pay", "POST", (("x-canary", "1"),))
    assert route.fault == Fault(DelayFault(50.0, 100.0), AbortFault(503, 5.0))
    assert payments.rate_limit.per_source == TokenBucketSpec(10.0, 20.0)


def test_routes_without_a_name_are_named_by_position():
    policy = parse_policy({"default": {"routes": [{"match": {"method": "GET"}}, {}]}})
    assert [r.name for r in policy.default.routes] == ["route-0", "route-1"]


def test_the_policy_as_a_dict_reads_back_as_the_same_policy():
    policy = parse_policy(
        {
            "services": {
                "payments": {"split": {"v1": 90, "v2": 10}, "routes": [{"fault": {"abort": {"status": 500}}}]}
            }
        }
    )
    again = parse_policy(json.loads(json.dumps(policy_as_dict(policy))))
    assert again == policy


# rejections: each names its field -------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        ({"services": {"payments": {"split": {"v1": 90, "v2": 5}}}}, "services.payments.split", "sum to 100"),
        ({"default": {"timeouts": {"connect_ms": -1}}}, "default.timeouts.connect_ms", "greater than 0"),
        ({"default": {"timeouts": {"per_try_ms": 0}}}, "default.timeouts.per_try_ms", "greater than 0"),
        (
            {"services": {"payments": {"retries": {"per_try_timeout_ms": -5}}}},
            "services.payments.retries.per_try_timeout_ms",
            "greater than 0",
        ),
        ({"default": {"retries": {"atempts": 3}}}, "default.retries.atempts", "did you mean 'attempts'"),
        ({"defaults": {}}, "defaults", "unknown key"),
        ({"services": {"payments": {"splitt": {}}}}, "services.payments.splitt", "unknown key"),
        ({"default": {"load_balancer": "random"}}, "default.load_balancer", "peak_ewma"),
        (
            {"default": {"routes": [{"fault": {"abort": {"status": 503, "percent": 120}}}]}},
            "default.routes[0].fault.abort.percent",
            "from 0 to 100",
        ),
        (
            {"default": {"routes": [{"fault": {"delay": {"fixed_ms": 5, "percent": -1}}}]}},
            "default.routes[0].fault.delay.percent",
            "from 0 to 100",
        ),
        (
            {"default": {"outlier_detection": {"max_ejection_percent": 101}}},
            "default.outlier_detection.max_ejection_percent",
            "from 0 to 100",
        ),
        (
            {"default": {"routes": [{"fault": {"abort": {"status": 99}}}]}},
            "default.routes[0].fault.abort.status",
            "HTTP status",
        ),
        ({"default": {"retries": {"statuses": [503, 700]}}}, "default.retries.statuses[1]", "HTTP status"),
        ({"default": {"retries": {"statuses": ["503"]}}}, "default.retries.statuses[0]", "HTTP status"),
        ({"default": {"retries": {"retry_on": ["5xx"]}}}, "default.retries.retry_on[0]", "unknown condition"),
        ({"default": {"retries": {"attempts": -1}}}, "default.retries.attempts", "at least 0"),
        ({"default": {"retries": {"attempts": True}}}, "default.retries.attempts", "integer"),
        (
            {"default": {"retries": {"backoff_max_ms": 10}}},
            "default.retries.backoff_max_ms",
            "backoff_base_ms",
        ),
        ({"default": {"routes": [{"fault": {}}]}}, "default.routes[0].fault", "delay, abort or both"),
        (
            {"default": {"routes": [{"fault": {"delay": {}}}]}},
            "default.routes[0].fault.delay.fixed_ms",
            "required",
        ),
        ({"default": {"routes": [{"split": {}}]}}, "default.routes[0].split", "at least one version"),
        ({"default": {"routes": [{"name": "a"}, {"name": "a"}]}}, "default.routes[1].name", "duplicate"),
        (
            {"default": {"routes": [{"match": {"path_prefix": "api"}}]}},
            "default.routes[0].match.path_prefix",
            "'/'",
        ),
        ({"default": {"split": {"v1": "90"}}}, "default.split.v1", "number"),
        ({"default": {"retries": 2}}, "default.retries", "must be an object"),
        ({"revision": "7"}, "revision", "integer"),
        ({"services": {"Payments": {}}}, "services.Payments", "lower case"),
    ],
)
def test_an_invalid_document_is_rejected_naming_the_field(document, field, words):
    error = rejection(document)
    assert error.field == field
    assert str(error).startswith(f"{field}: ") and words in str(error)


def test_a_split_version_that_no_instance_has_is_rejected():
    error = rejection({"services": {"payments": {"split": {"v1": 50, "v3": 50}}}}, PAYMENTS)
    assert error.field == "services.payments.split.v3"
    assert "unknown version 'v3' of payments" in str(error) and "v1, v2" in str(error)


def test_a_route_version_that_no_instance_has_is_rejected():
    error = rejection({"services": {"payments": {"routes": [{"split": {"v9": 100}}]}}}, PAYMENTS)
    assert error.field == "services.payments.routes[0].split.v9"


def test_a_default_split_is_checked_against_every_service_it_applies_to():
    error = rejection({"default": {"split": {"v2": 100}}}, {"catalog": frozenset({"v1"})})
    assert error.field == "default.split.v2" and "of catalog" in str(error)


def test_versions_of_services_without_known_instances_are_accepted():
    policy = parse_policy(
        {"services": {"ledger": {"split": {"v7": 100}}}}, {"payments": frozenset()} | PAYMENTS
    )
    assert policy.services["ledger"].split == (("v7", 100.0),)


def test_a_yaml_integer_header_value_means_its_text():
    policy = parse_policy({"default": {"routes": [{"match": {"headers": {"x-canary": 1}}}]}})
    assert policy.default.routes[0].match.headers == (("x-canary", "1"),)


# files ----------------------------------------------------------------------------------------

YAML = """\
revision: 3
default:
  retries:
    attempts: 3
services:
  payments:
    split: {v1: 90, v2: 10}
    routes:
      - name: canary
        match: {headers: {x-canary: 1}}
        split: {v2: 100}
"""


def test_a_yaml_file_is_read(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(YAML)
    policy = load_policy_file(str(path))
    assert policy.revision == 3 and policy.for_service("payments").retries.attempts == 3
    assert policy.for_service("payments").routes[0].split == (("v2", 100.0),)


def test_a_json_file_is_read(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"revision": 2, "services": {"payments": {"split": {"v1": 90, "v2": 10}}}}))
    assert load_policy_file(str(path)).for_service("payments").split == (("v1", 90.0), ("v2", 10.0))


def test_an_empty_file_is_every_default(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("")
    assert load_policy_file(str(path)) == Policy()


def test_a_file_that_cannot_be_parsed_is_a_policy_error(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("services: {payments: [")
    with pytest.raises(PolicyError, match="neither YAML nor JSON"):
        load_policy_file(str(path))


def test_a_missing_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy_file(str(tmp_path / "absent.yaml"))


# the --policy flag ----------------------------------------------------------------------------

BASE = ["--service", "frontend", "--version", "v1", "--app", "127.0.0.1:8080", "--endpoints", "e.json"]


def test_without_a_policy_flag_the_sidecar_starts_with_every_default():
    config = parse_config(BASE, env={})
    assert config.policy == Policy() and config.policy_file is None


def test_the_policy_flag_gives_the_policy_the_sidecar_starts_with(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(YAML)
    config = parse_config([*BASE, "--policy", str(path)], env={})
    assert config.policy.revision == 3 and config.policy_file == str(path)
    assert isinstance(config.policy.for_service("payments"), ServicePolicy)


def test_the_policy_file_can_come_from_the_environment(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text('{"revision": 5}')
    assert parse_config(BASE, env={"MESHUI_SIDECAR_POLICY": str(path)}).policy.revision == 5


def test_a_bad_policy_file_fails_the_start_naming_the_field(tmp_path, capsys):
    path = tmp_path / "policy.yaml"
    path.write_text("services:\n  payments:\n    split: {v1: 90, v2: 5}\n")
    with pytest.raises(SystemExit) as exited:
        parse_config([*BASE, "--policy", str(path)], env={})
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"--policy {path}: services.payments.split: weights must sum to 100, got 95" in err
