"""The alert state machine, pure: readings and an injected clock in, states and transitions out."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from meshui.alerts.states import (
    FIRING_STATES,
    NO_DATA,
    Condition,
    Reading,
    State,
    Status,
    Transition,
    initial,
    periods,
    replay,
    resolve,
    step,
)
from tests.clock import FakeClock

# Fires above 5 %, recovers only below 2 % (the hysteresis example).
ERRORS = Condition(">", fire=0.05, recover=0.02)


class Evaluation:
    """One rule on one target, evaluated every ``interval`` seconds of a fake clock."""

    def __init__(self, condition: Condition, interval: float = 10.0) -> None:
        self.condition = condition
        self.clock = FakeClock(1000.0)
        self.interval = interval
        self.status = initial(self.clock())
        self.transitions: list[Transition] = []

    def read(self, reading: Reading | float | None) -> State:
        """Evaluate once with ``reading`` (a value, None for no data), then let time pass."""
        if not isinstance(reading, Reading):
            reading = NO_DATA if reading is None else Reading(reading)
        self.status, transition = step(self.condition, self.status, reading, self.clock())
        if transition is not None:
            self.transitions.append(transition)
        self.clock.advance(self.interval)
        return self.status.state

    def states(self, readings: Sequence[Reading | float | None]) -> list[State]:
        return [self.read(reading) for reading in readings]


def test_a_breach_without_a_pending_period_fires_at_once_and_a_recovery_resolves() -> None:
    rule = Evaluation(ERRORS)
    assert rule.states([0.01, 0.06, 0.06, 0.01]) == [
        State.NORMAL, State.FIRING, State.FIRING, State.NORMAL]
    assert [(t.old, t.new, t.value, t.at) for t in rule.transitions] == [
        (State.NORMAL, State.FIRING, 0.06, 1010.0), (State.FIRING, State.NORMAL, 0.01, 1030.0)]


def test_it_fires_above_5_percent_and_does_not_recover_at_4_percent_when_recover_is_2() -> None:
    rule = Evaluation(ERRORS)
    assert rule.states([0.06, 0.04, 0.03, 0.02, 0.021, 0.0199]) == [
        State.FIRING, State.FIRING, State.FIRING, State.FIRING, State.FIRING, State.NORMAL]
    assert rule.transitions[-1].value == 0.0199


def test_without_hysteresis_it_recovers_as_soon_as_it_stops_breaching() -> None:
    rule = Evaluation(Condition(">", 0.05, 0.05))
    assert rule.states([0.06, 0.05, 0.06]) == [State.FIRING, State.FIRING, State.FIRING]
    assert rule.states([0.0499]) == [State.NORMAL]


def test_the_fire_threshold_itself_does_not_breach() -> None:
    assert Evaluation(ERRORS).states([0.05]) == [State.NORMAL]
    assert Evaluation(Condition("<", 10.0, 20.0)).states([10.0]) == [State.NORMAL]


def test_a_breach_is_pending_until_it_has_held_for_the_pending_period() -> None:
    rule = Evaluation(Condition(">", 0.05, 0.02, for_s=30))
    assert rule.states([0.1, 0.1, 0.1]) == [State.PENDING, State.PENDING, State.PENDING]
    assert rule.read(0.1) == State.FIRING  # 30 s after the first breach
    pending, firing = rule.transitions
    assert (pending.new, pending.at, firing.new, firing.at) == (
        State.PENDING, 1000.0, State.FIRING, 1030.0)
    assert firing.detail == "0.1 > 0.05 for 30 s"


def test_a_pending_alert_that_stops_breaching_goes_back_to_normal_even_above_recover() -> None:
    rule = Evaluation(Condition(">", 0.05, 0.02, for_s=30))
    assert rule.states([0.1, 0.1, 0.04, 0.1]) == [
        State.PENDING, State.PENDING, State.NORMAL, State.PENDING]
    # The pending period starts over at the new breach.
    assert rule.status.since == 1030.0
    assert rule.states([0.1, 0.1, 0.1]) == [State.PENDING, State.PENDING, State.FIRING]


def test_a_pending_period_shorter_than_the_interval_fires_at_the_next_evaluation() -> None:
    rule = Evaluation(Condition(">", 1.0, 1.0, for_s=5))
    assert rule.states([2.0, 2.0]) == [State.PENDING, State.FIRING]


def test_keep_firing_for_holds_the_alert_in_recovering_then_resolves() -> None:
    rule = Evaluation(Condition(">", 0.05, 0.02, keep_firing_s=20))
    assert rule.states([0.1, 0.01, 0.01]) == [State.FIRING, State.RECOVERING, State.RECOVERING]
    assert rule.status.firing
    assert rule.read(0.01) == State.NORMAL  # 20 s after it recovered
    assert [t.new for t in rule.transitions] == [State.FIRING, State.RECOVERING, State.NORMAL]
    assert rule.transitions[-1].at == 1030.0


def test_a_value_that_is_not_recovered_during_recovering_fires_again_and_the_wait_restarts() -> None:
    rule = Evaluation(Condition(">", 0.05, 0.02, keep_firing_s=20))
    # 0.03 is under fire but over recover: not recovered, so Firing again (not Normal).
    assert rule.states([0.1, 0.01, 0.03, 0.01, 0.01, 0.01]) == [
        State.FIRING, State.RECOVERING, State.FIRING, State.RECOVERING, State.RECOVERING,
        State.NORMAL]


def test_below_rules_fire_under_fire_and_recover_over_recover() -> None:
    rule = Evaluation(Condition("<", fire=5.0, recover=8.0, for_s=10))  # rps drops under 5
    assert rule.states([6.0, 4.0, 4.5, 7.0, 8.0, 8.5]) == [
        State.NORMAL, State.PENDING, State.FIRING, State.FIRING, State.FIRING, State.NORMAL]


def test_no_data_is_its_own_state_entered_from_any_state_and_left_when_data_returns() -> None:
    rule = Evaluation(Condition(">", 0.05, 0.02, for_s=10))
    assert rule.states([None, 0.01, 0.1, 0.1, None, None, 0.1, 0.1]) == [
        State.NO_DATA, State.NORMAL, State.PENDING, State.FIRING, State.NO_DATA, State.NO_DATA,
        State.PENDING, State.FIRING]
    no_data = [t for t in rule.transitions if t.new == State.NO_DATA]
    assert [(t.old, t.value, t.detail) for t in no_data] == [
        (State.NORMAL, None, "no data in the window"), (State.FIRING, None, "no data in the window")]


def test_no_data_keeps_its_since_while_it_lasts() -> None:
    rule = Evaluation(ERRORS)
    rule.states([None, None, None])
    assert (rule.status.state, rule.status.since, len(rule.transitions)) == (State.NO_DATA, 1000.0, 1)


def test_an_error_reading_is_the_error_state_with_its_reason() -> None:
    rule = Evaluation(Condition(">", 0.05, 0.02, keep_firing_s=60))
    down = Reading.failed("the live graph store (Redis) is unavailable")
    assert rule.states([0.1, down, down, 0.1]) == [
        State.FIRING, State.ERROR, State.ERROR, State.FIRING]
    error = rule.transitions[1]
    assert (error.old, error.new, error.value, error.detail) == (
        State.FIRING, State.ERROR, None, "the live graph store (Redis) is unavailable")
    assert rule.status.since == 1030.0


def test_an_unchanged_state_keeps_its_since_and_why_and_updates_the_value() -> None:
    status = Status(State.FIRING, 900.0, 0.1, "0.1 > 0.05")
    new, transition = step(ERRORS, status, Reading(0.07), 950.0)
    assert transition is None
    assert new == Status(State.FIRING, 900.0, 0.07, "0.1 > 0.05")


def test_a_resolved_target_that_went_away_records_a_transition_to_normal_unless_normal() -> None:
    firing = Status(State.FIRING, 900.0, 0.1)
    assert resolve(firing, 950.0, "gone") == Transition(State.FIRING, State.NORMAL, 950.0, None, "gone")
    assert resolve(Status(State.NORMAL, 900.0), 950.0, "gone") is None


def test_recovering_counts_as_firing() -> None:
    assert FIRING_STATES == {State.FIRING, State.RECOVERING}
    assert not Status(State.PENDING, 0.0).firing


@pytest.mark.parametrize("op, fire, recover", [(">", 0.05, 0.06), ("<", 5.0, 4.0), ("=", 1.0, 1.0)])
def test_a_condition_refuses_a_recover_threshold_on_the_wrong_side(op: str, fire: float,
                                                                   recover: float) -> None:
    with pytest.raises(ValueError):
        Condition(op, fire, recover)


def test_replay_steps_from_normal_and_periods_are_what_a_chart_shades() -> None:
    condition = Condition(">", 0.05, 0.02, for_s=20)
    times = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    values = [0.0, 0.1, 0.1, 0.1, 0.01, None, 0.0]
    statuses, transitions = replay(condition, [
        (t, NO_DATA if v is None else Reading(v)) for t, v in zip(times, values, strict=True)])
    assert [s.state for s in statuses] == [
        State.NORMAL, State.PENDING, State.PENDING, State.FIRING, State.NORMAL, State.NO_DATA,
        State.NORMAL]
    assert [t.new for t in transitions] == [
        State.PENDING, State.FIRING, State.NORMAL, State.NO_DATA, State.NORMAL]
    assert periods(times, statuses, 10.0) == [
        (State.PENDING, 10.0, 30.0), (State.FIRING, 30.0, 40.0), (State.NO_DATA, 50.0, 60.0)]
