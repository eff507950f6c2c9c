"""meshctl's alert vocabulary matches the server's; its values, targets and inputs read right.

The CLI imports nothing of the web app, so it keeps its own copy of the metrics, their
units, the states and the severities: these tests fail when the two disagree.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from meshui.alerts import metrics, targets
from meshui.alerts.models import SEVERITIES
from meshui.alerts.states import OPS, State
from meshui.cli import alert_text
from meshui.cli.alert_input import (
    flag_of,
    parse_duration,
    parse_labels,
    parse_threshold,
    rule_body,
    target_of,
)
from meshui.cli.errors import CliError
from meshui.cli.main import parser
from meshui.cli.terminal import relative, span

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_the_vocabulary_is_the_server_s() -> None:
    assert alert_text.METRICS == metrics.METRICS
    assert alert_text.EVENT_METRICS == metrics.EVENT_METRICS
    assert {m: alert_text.unit_of(m) for m in alert_text.METRICS} == metrics.UNITS
    assert alert_text.STATES == tuple(State)
    assert alert_text.FIRING == {str(s) for s in (State.FIRING, State.RECOVERING)}
    assert alert_text.SEVERITIES == SEVERITIES
    assert alert_text.OPS == OPS


@pytest.mark.parametrize("target", [
    {"service": "payments"}, {"service": "payments", "version": "v2"},
    {"source": "checkout", "target": "payments"},
    {"source": "*", "target": "payments", "version": "v2"},
    {"instance": "payments-v1-0"}, {"service": "payments", "instance": "payments-v1-0"},
])
def test_a_target_reads_as_the_server_s_label(target: dict[str, str]) -> None:
    assert alert_text.target_text(target) == targets.parse(target).label()


@pytest.mark.parametrize("metric, value, shown", [
    ("error_rate", 0.2314, "23.14%"), ("error_rate", 0.07, "7%"), ("error_rate", 1.0, "100%"),
    ("error_rate", None, "-"), ("p95_ms", 182.4, "182ms"), ("p50_ms", 9.06, "9.1ms"),
    ("rps", 3.5, "3.5 req/s"), ("rps", 0.0333, "0.0333 req/s"), ("rps", 12345.0, "12345 req/s"),
    ("retries", 0.1, "0.1 events/s"), ("no_data", 1.0, "1"), ("no_data", 0.0, "0"),
    ("rps", True, "-"),
])
def test_a_value_is_shown_with_its_unit(metric: str, value: object, shown: str) -> None:
    assert alert_text.value_text(metric, value) == shown


def test_a_rule_reads_as_one_sentence() -> None:
    rule = {"id": 3, "name": "payments errors", "target": {"source": "checkout",
            "target": "payments"}, "metric": "error_rate", "window_s": 90, "op": ">",
            "fire": 0.2, "recover": 0.05, "for_s": 10, "keep_firing_s": 120,
            "severity": "critical"}
    assert alert_text.rule_line(rule, "created") == (
        "rule 3 'payments errors' created: error_rate of checkout -> payments > 20% over 1m30s "
        "(recovers < 5%) for 10s, keeps firing 2m, critical")
    quiet = rule | {"metric": "rps", "op": "<", "fire": 1.0, "recover": 1.0, "for_s": 0,
                    "keep_firing_s": 0}
    assert alert_text.condition_text(quiet) == "rps < 1 req/s over 1m30s"


def test_the_summary_counts_states_in_their_order_and_the_silenced() -> None:
    alerts = [{"state": "Normal"}, {"state": "Firing", "silenced": True}, {"state": "Normal"},
              {"state": "Error"}]
    assert alert_text.alert_summary(alerts, 10) == (
        "4 alerts: 2 Normal, 1 Firing, 1 Error (1 silenced); evaluated every 10 s")
    assert alert_text.state_text(alerts[1]) == "Firing (silenced)"
    assert alert_text.alert_summary([{"state": "Pending"}], None) == "1 alert: 1 Pending"


def test_a_preview_counts_a_firing_that_recovers_and_fires_again_once() -> None:
    line = {"transitions": [{"from_state": "Normal", "to_state": "Pending"},
                            {"from_state": "Pending", "to_state": "Firing"},
                            {"from_state": "Firing", "to_state": "Recovering"},
                            {"from_state": "Recovering", "to_state": "Firing"},
                            {"from_state": "Firing", "to_state": "Normal"},
                            {"from_state": "Normal", "to_state": "Firing"}]}
    assert alert_text.fired(line) == 2
    preview = {"metric": "rps", "op": "<", "times": [0, 10, 20, 30], "step": 10, "truncated": 0,
               "targets": [{"target": {"service": "a"}, "values": [5.0, 0.5, 0.2, None],
                            "periods": [{"state": "Firing", "start": 10, "end": 40}],
                            "transitions": line["transitions"][-1:]}]}
    start = datetime.fromtimestamp(70, UTC)
    assert alert_text.preview_rows(preview, start) == [["a", "Firing", "1m ago", "30s",
                                                        "0.2 req/s"]]


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("90s", 90), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1h30m", 5400),
    ("0", 0), ("1M", 60),
])
def test_a_duration_is_seconds_or_units(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "1.5h", "5m1h", "h"])
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_a_threshold_is_a_number_or_a_percentage() -> None:
    assert (parse_threshold("0.2"), parse_threshold("20%"), parse_threshold("250")) == (
        0.2, 0.2, 250.0)
    for text in ("nan", "inf", "lots", "%"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_threshold(text)


def test_time_reads_both_ways() -> None:
    assert [span(s) for s in (0, 45, 60, 5400, 90061, 7 * 86400 + 5)] == [
        "0s", "45s", "1m", "1h30m", "1d1h", "7d"]
    assert relative("2026-12-03T11:55:00Z", NOW) == "5m ago"
    assert relative("2026-12-03T14:00:00+00:00", NOW) == "in 2h"
    assert (relative(None, NOW), relative("yesterday", NOW)) == ("-", "?")


def args_of(*argv: str) -> argparse.Namespace:
    return parser().parse_args(["alert", "create", "x", *argv])


@pytest.mark.parametrize("argv, target", [
    (["--service", "a"], {"service": "a"}),
    (["--service", "a", "--version", "v2"], {"service": "a", "version": "v2"}),
    (["--edge", "a,b"], {"source": "a", "target": "b"}),
    (["--edge", " * , b ", "--version", "v1"], {"source": "*", "target": "b", "version": "v1"}),
    (["--instance", "i-0"], {"instance": "i-0"}),
    (["--instance", "i-0", "--service", "a"], {"service": "a", "instance": "i-0"}),
    ([], None),
])
def test_the_target_flags_make_the_api_s_shapes(argv: list[str], target: object) -> None:
    assert target_of(args_of(*argv)) == target


@pytest.mark.parametrize("argv", [
    ["--edge", "a,b", "--service", "a"], ["--edge", "a"], ["--edge", "a,b,c"],
    ["--edge", ",b"], ["--version", "v1"], ["--instance", "i", "--version", "v1"],
])
def test_target_flags_that_make_no_shape_are_refused(argv: list[str]) -> None:
    with pytest.raises(CliError) as caught:
        target_of(args_of(*argv))
    assert caught.value.code == 2


def test_flags_go_over_the_rule_they_change() -> None:
    base = {"id": 3, "name": "a", "target": {"service": "a"}, "metric": "rps", "window_s": 60,
            "op": "<", "fire": 1.0, "recover": 1.0, "labels": {"team": "x"},
            "contact_points": [1], "created_at": "-", "updated_at": "-"}
    update = parser().parse_args(["alert", "update", "3", "--fire", "2", "--label", "tier=1"])
    assert rule_body(update, base, None) == {
        key: value for key, value in base.items() if key not in ("id", "created_at",
                                                                 "updated_at")
    } | {"fire": 2.0, "labels": {"tier": "1"}}
    assert rule_body(update, base, [4, 5])["contact_points"] == [4, 5]
    with pytest.raises(CliError):
        parse_labels(["a=1", "a=2"])


def test_a_refused_field_is_named_as_the_flag_that_set_it() -> None:
    assert flag_of("rule.recover", from_file=False) == "--recover"
    assert flag_of("rule.target.source", from_file=False) == "--edge"
    assert flag_of("rule.labels.severity", from_file=False) == "--label severity"
    assert flag_of("rule.window_s", from_file=False) == "--window"
    assert flag_of("rule.window_s", from_file=True) == "window_s"
    assert flag_of(None, from_file=False) == ""
