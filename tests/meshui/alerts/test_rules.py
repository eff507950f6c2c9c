"""What a rule measures and on what, checked and computed without I/O: targets, patterns,
the rule's fields together, metric values, window totals and the backtest's sliding window."""

from __future__ import annotations

from typing import Any

import pytest

from collector.graphstore import SEP
from meshui.alerts import metrics, rules, targets
from meshui.alerts.backtest import cell_of, evaluation_times, sliding
from meshui.alerts.metrics import Counts, value_of
from meshui.alerts.targets import SeriesIndex, Target, TargetProblem
from meshui.alerts.windows import (
    FieldSplitter,
    WindowTotals,
    evaluated_seconds,
    running_totals,
    units_of,
)
from proxies.telemetry import histogram
from proxies.telemetry.events import EVENT_KEYS


def s(*parts: str) -> str:
    return SEP.join(parts) + SEP


@pytest.mark.parametrize("raw, kind, requests, events", [
    ({"service": "payments"}, "service", s("n", "payments"), s("rn", "payments")),
    ({"service": "payments", "version": "v2"}, "version", s("nv", "payments", "v2"), None),
    ({"source": "checkout", "target": "payments"}, "edge", s("e", "checkout", "payments"),
     s("r", "checkout", "payments")),
    ({"source": "a", "target": "b", "version": "v1"}, "edge_version", s("ev", "a", "b", "v1"), None),
    ({"service": "payments", "instance": "p-0"}, "instance", s("i", "payments", "p-0"),
     s("ri", "payments", "p-0")),
])
def test_each_target_shape_reads_its_scope_s_series(raw: dict[str, str], kind: str, requests: str,
                                                    events: str | None) -> None:
    target = targets.parse(raw)
    assert target.kind == kind and not target.is_pattern
    scope = target.scope()
    assert scope is not None and (scope.requests, scope.events) == (requests, events)
    assert target.as_json() == raw


def test_an_instance_alone_has_no_scope_until_its_service_is_known() -> None:
    target = targets.parse({"instance": "p-0"})
    assert (target.kind, target.scope()) == ("instance", None)
    index = SeriesIndex([s("i", "payments", "p-0"), s("i", "catalog", "c-0")])
    assert index.instance_service("p-0") == "payments"
    assert index.instance_service("nobody") is None


@pytest.mark.parametrize("raw, field", [
    ("payments", "target"),
    ({}, "target"),
    ({"source": "a"}, "target"),
    ({"service": "a", "source": "b", "target": "c"}, "target"),
    ({"service": "a", "colour": "red"}, "target.colour"),
    ({"service": ""}, "target.service"),
    ({"service": "a\nb"}, "target.service"),
    ({"source": "a", "target": "x" * 256}, "target.target"),
])
def test_a_target_that_is_not_a_shape_names_the_field_at_fault(raw: Any, field: str) -> None:
    with pytest.raises(TargetProblem) as caught:
        targets.parse(raw)
    assert caught.value.field == field


def test_a_pattern_matches_every_edge_into_a_service_from_the_data() -> None:
    index = SeriesIndex([s("e", "checkout", "payments"), s("e", "frontend", "catalog"),
                         s("r", "unknown", "payments"), s("e", "fraud", "payments"),
                         s("n", "payments")])
    into = targets.parse({"source": "*", "target": "payments"})
    assert into.is_pattern
    assert [t.as_json() for t in index.expand(into)] == [
        {"source": "checkout", "target": "payments"}, {"source": "fraud", "target": "payments"},
        {"source": "unknown", "target": "payments"}]  # known by its events only: still an edge
    assert [t.source for t in index.expand(targets.parse({"source": "f*", "target": "*"}))] == [
        "fraud", "frontend"]
    assert index.expand(targets.parse({"service": "pay*"})) == [Target("service", service="payments")]
    assert index.expand(targets.parse({"service": "*z*"})) == []


def test_a_pattern_of_instances_fills_in_each_one_s_service() -> None:
    index = SeriesIndex([s("i", "payments", "p-0"), s("i", "payments", "p-1"), s("i", "catalog", "c-0")])
    found = index.expand(targets.parse({"instance": "p-*"}))
    assert [t.as_json() for t in found] == [{"service": "payments", "instance": "p-0"},
                                            {"service": "payments", "instance": "p-1"}]
    assert len(index.expand(targets.parse({"service": "catalog", "instance": "*"}))) == 1


def test_a_star_is_the_only_wildcard_and_other_characters_match_literally() -> None:
    assert targets.name_matches("a.b*", "a.bc")
    assert not targets.name_matches("a.b*", "axbc")
    assert not targets.name_matches("a?", "ab")


def rule(**fields: Any) -> dict[str, Any]:
    base = {"name": "payments errors", "target": {"source": "checkout", "target": "payments"},
            "metric": "error_rate", "window_s": 60, "op": ">", "fire": 0.2, "recover": 0.05}
    return base | fields


def test_a_checked_rule_is_completed_with_its_defaults() -> None:
    fields = rules.check(rule(recover=None))
    assert fields == {
        "name": "payments errors", "target": {"source": "checkout", "target": "payments"},
        "metric": "error_rate", "window_s": 60, "op": ">", "fire": 0.2, "recover": 0.2,
        "for_s": 0, "keep_firing_s": 0, "severity": "warning", "labels": {}, "contact_points": []}
    no_data = rules.check(rule(metric="no_data", op=None, fire=None, recover=None))
    assert (no_data["op"], no_data["fire"], no_data["recover"]) == (">", 0.5, 0.5)


@pytest.mark.parametrize("changes, field, words", [
    ({"recover": 0.3}, "recover", "must be at most fire (0.2) when op is '>'"),
    ({"op": "<", "fire": 5.0, "recover": 4.0, "metric": "rps"}, "recover", "must be at least fire"),
    ({"fire": 5.0, "recover": 0.02}, "fire", "0..1 (a ratio: 0.05 is 5 %)"),
    ({"metric": "p99_ms", "fire": -1.0, "recover": -2.0}, "fire", "must be >= 0"),
    ({"op": None}, "op", "op is required"),
    ({"fire": None}, "fire", "fire is required"),
    ({"metric": "no_data", "op": "<"}, "op", "must be '>'"),
    ({"metric": "no_data", "fire": 1.0, "recover": 0.5}, "fire", "0 <= fire < 1"),
    ({"target": {"service": "p", "version": "v2"}, "metric": "retries"}, "metric",
     "a version records no policy events"),
    ({"target": {"service": "p", "edge": "x"}}, "target.edge", "not a target field"),
    ({"labels": {"2team": "x"}}, "labels.2team", "label name"),
    ({"labels": {"__meta": "x"}}, "labels.__meta", "label name"),
    ({"labels": {"severity": "page"}}, "labels.severity", "set from the rule itself"),
    ({"labels": {"team": "a\tb"}}, "labels.team", "printable"),
    ({"labels": {f"l{n}": "x" for n in range(21)}}, "labels", "at most 20"),
])
def test_a_rule_that_cannot_be_saved_names_the_field(changes: dict[str, Any], field: str,
                                                     words: str) -> None:
    with pytest.raises(rules.RuleProblem) as caught:
        rules.check(rule(**changes))
    assert caught.value.field == field
    assert words in str(caught.value)


def test_the_metric_vocabulary_holds_every_edge_event_and_the_issue_s_metrics() -> None:
    assert set(EVENT_KEYS) <= set(metrics.METRICS)
    for name in ("error_rate", "p50_ms", "p95_ms", "p99_ms", "rps", "retries", "timeouts",
                 "ejections", "overflows", "rate_limited", "no_data"):
        assert name in metrics.METRICS and name in metrics.UNITS and name in metrics.BOUNDS


def test_values_over_a_window_and_what_counts_as_no_data() -> None:
    ten, hundred = histogram.bucket_index(10.0), histogram.bucket_index(100.0)
    counts = Counts(requests=100, errors=7, latency={ten: 90, hundred: 10}, events={"retries": 30})
    assert value_of("error_rate", counts, 60) == 0.07
    assert value_of("rps", counts, 60) == round(100 / 60, 4)
    assert value_of("retries", counts, 60) == 0.5
    assert value_of("timeouts", counts, 60) == 0.0
    assert value_of("p50_ms", counts, 60) == round(histogram.quantile(counts.latency, 0.5), 3)
    assert value_of("p99_ms", counts, 60) == round(histogram.quantile(counts.latency, 0.99), 3)
    assert value_of("p50_ms", counts, 60) < 11 < 90 < value_of("p99_ms", counts, 60)  # type: ignore[operator]
    assert value_of("no_data", counts, 60) == 0.0
    for metric in ("error_rate", "rps", "p99_ms", "retries"):
        assert value_of(metric, None, 60) is None
        assert value_of(metric, Counts(), 60) is None
    assert value_of("no_data", None, 60) == 1.0
    events_only = Counts(events={"ejections": 3})
    assert (value_of("ejections", events_only, 30), value_of("error_rate", events_only, 30)) == (0.1, None)


def test_running_totals_snapshot_each_window_from_hashes_newest_first() -> None:
    hashes = [(99, {b"e\x1fa\x1fb\x1fn": b"1"}), (98, {b"e\x1fa\x1fb\x1fn": b"2", b"junk": b"x"}),
              (97, {b"e\x1fa\x1fb\x1fn": b"4"})]
    totals = running_totals(hashes, 100, [1, 2, 5])
    assert {w: t[b"e\x1fa\x1fb\x1fn"] for w, t in totals.items()} == {1: 1, 2: 3, 5: 7}
    window = WindowTotals(2, FieldSplitter().by_series(totals[2]))
    scope = targets.parse({"source": "a", "target": "b"}).scope()
    assert scope is not None
    found = window.counts(scope)
    assert found is not None and found.requests == 3
    missing = targets.parse({"service": "zzz"}).scope()
    assert missing is not None and window.counts(missing) is None
    assert list(evaluated_seconds(100, 3)) == [97, 98, 99]
    # A long window ends at the last whole 10 s cell and is whole cells long.
    assert evaluated_seconds(3607, 600) == range(3000, 3600)
    assert evaluated_seconds(3607, 605) == range(2990, 3600)


def test_a_cycle_reads_single_seconds_where_a_window_starts_inside_a_settled_chunk() -> None:
    # At 1007 with windows 10 and 30, seconds before 980 settled: 1006..980 one by one
    # (the newest are not settled; 997 and 977 start windows), then the chunk 970..979.
    units = units_of(1007, [10, 30], settled_before=980)
    assert units[:3] == [(1006, 1), (1005, 1), (1004, 1)]
    assert (970, 10) not in units  # 977 starts the 30 s window inside it
    assert units_of(1000, [10, 30], 990) == [(999, 1), (998, 1), (997, 1), (996, 1), (995, 1),
                                            (994, 1), (993, 1), (992, 1), (991, 1), (990, 1),
                                            (980, 10), (970, 10)]


def test_the_backtest_slides_its_window_a_cell_at_a_time() -> None:
    cells = {second: Counts(requests=1, errors=second // 10 % 2) for second in range(0, 200, 10)}
    times = evaluation_times(155, 10, span=55)
    assert times == [100, 110, 120, 130, 140, 150]
    windows = sliding(cells, [range(t - 30, t) for t in times], 10)
    assert [(w.requests, w.errors) for w in windows] == [(3, 2), (3, 1), (3, 2), (3, 1), (3, 2), (3, 1)]
    # A step longer than the window starts over each time.
    assert [w.requests for w in sliding(cells, [range(30, 50), range(130, 150)], 10)] == [2, 2]
    assert cell_of([range(30, 50)]) == 10 and cell_of([range(31, 51)]) == 1
