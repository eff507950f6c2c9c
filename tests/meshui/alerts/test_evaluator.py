"""The evaluator against a real Valkey holding graph data written by the collector's writer,
with an injected clock: each transition, patterns, NoData, Error, and two evaluators."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.db import connection

from meshui.alerts import recording
from meshui.alerts.evaluator import Evaluator, lock_key
from meshui.alerts.models import AlertRule, AlertState, AlertTransition
from meshui.alerts.rules import rule_of
from meshui.alerts.schedule import aligned
from meshui.alerts.states import State
from meshui.alerts.tasks import evaluate_alerts
from meshui.alerts.window_cache import Tail, WindowCache
from tests.clock import FakeClock
from tests.meshui.alerts.traffic import BASE, Traffic, make_rule
from tests.meshui.conftest import StoppableRedis

pytestmark = pytest.mark.django_db


@pytest.fixture
def traffic(meshui_settings: Any, redis_client: redis.Redis) -> Traffic:
    return Traffic(redis_client)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(BASE + 0.3)


@pytest.fixture
def evaluator(redis_client: redis.Redis, clock: FakeClock) -> Evaluator:
    return Evaluator(redis_client, clock=clock, interval=10)


def states() -> dict[str, tuple[str, float | None]]:
    return {row.target_key: (row.state, row.value) for row in AlertState.objects.all()}


def history() -> list[tuple[str, str, float | None]]:
    return [(t.from_state, t.to_state, t.value) for t in AlertTransition.objects.order_by("at", "pk")]


def cycle(evaluator: Evaluator, clock: FakeClock, traffic: Traffic | None = None) -> None:
    """Write what the traffic holds, evaluate once, then move to the next cycle."""
    if traffic is not None:
        traffic.write()
    report = evaluator.run()
    assert report.ran and not report.skipped, report
    clock.advance(10)


EDGE = '{"source":"checkout","target":"payments"}'


def test_a_rule_goes_pending_firing_recovering_normal_with_the_value_of_each_change(
        traffic: Traffic, evaluator: Evaluator, clock: FakeClock) -> None:
    make_rule(for_s=10, keep_firing_s=10)
    # Each cycle's 10 s window holds the 10 seconds written just before it.
    for error_rate in (0.0, 0.5, 0.5, 0.19, 0.04, 0.04):
        clock.advance(10)
        at = int(clock())
        traffic.calls("checkout", "payments", range(at - 10, at), 100, error_rate).write()
        assert evaluator.run().ran
    assert history() == [(State.NORMAL, State.PENDING, 0.5), (State.PENDING, State.FIRING, 0.5),
                         (State.FIRING, State.RECOVERING, 0.04),
                         (State.RECOVERING, State.NORMAL, 0.04)]
    # Firing held at 19 % (recover is 5 %): no transition in the fourth cycle.
    transitions = list(AlertTransition.objects.order_by("at"))
    assert [int(t.at.timestamp()) for t in transitions] == [BASE + 20, BASE + 30, BASE + 50,
                                                            BASE + 60]
    assert transitions[0].target == {"source": "checkout", "target": "payments"}
    assert transitions[1].cycle == BASE + 30
    row = AlertState.objects.get()
    assert (row.state, row.value, int(row.since.timestamp())) == (State.NORMAL, 0.04, BASE + 60)
    assert int(row.last_evaluated.timestamp()) == BASE + 60


def test_every_metric_reads_its_target_s_series(traffic: Traffic, evaluator: Evaluator,
                                                clock: FakeClock) -> None:
    make_rule("rps", target={"service": "payments"}, metric="rps", fire=5.0, recover=5.0)
    make_rule("p99", target={"source": "checkout", "target": "payments"}, metric="p99_ms",
              fire=100.0, recover=100.0)
    make_rule("v2", target={"service": "payments", "version": "v2"}, metric="error_rate")
    make_rule("instance", target={"instance": "payments-v2-0"}, metric="error_rate")
    make_rule("retries", target={"source": "checkout", "target": "payments"}, metric="retries",
              fire=1.0, recover=1.0)
    make_rule("into payments", target={"service": "payments"}, metric="retries",
              fire=1.0, recover=1.0)
    make_rule("no data", target={"service": "payments"}, metric="no_data", fire=0.5, recover=0.5)
    seconds = range(BASE - 10, BASE)
    traffic.calls("checkout", "payments", seconds, 10, 0.0, latency_ms=250.0,
                  events={"retries": 3})
    traffic.calls("checkout", "payments", seconds, 10, 0.5, version="v2", latency_ms=250.0)
    cycle(evaluator, clock, traffic)
    found = {row.rule.name: (row.state, row.value) for row in AlertState.objects.select_related("rule")}
    assert found["rps"] == (State.FIRING, 20.0)
    assert found["p99"][0] == State.FIRING and found["p99"][1] > 200  # type: ignore[operator]
    assert found["v2"] == (State.FIRING, 0.5)
    assert found["instance"] == (State.FIRING, 0.5)
    assert found["retries"] == (State.FIRING, 3.0)  # 3 a second, counted on the edge
    assert found["into payments"] == (State.FIRING, 3.0)  # ...and on the calls into payments
    assert found["no data"] == (State.NORMAL, 0.0)


def test_a_target_without_requests_is_no_data_until_traffic_comes(
        traffic: Traffic, evaluator: Evaluator, clock: FakeClock) -> None:
    make_rule(window_s=30)
    cycle(evaluator, clock, traffic)
    assert states() == {EDGE: (State.NO_DATA, None)}
    no_data = AlertTransition.objects.get()
    assert no_data.detail == "checkout -> payments had no request in the last 30 s"
    traffic.calls("checkout", "payments", range(int(clock()) - 5, int(clock())), 10, 0.5)
    cycle(evaluator, clock, traffic)
    assert states() == {EDGE: (State.FIRING, 0.5)}
    assert history() == [(State.NORMAL, State.NO_DATA, None), (State.NO_DATA, State.FIRING, 0.5)]


def test_a_no_data_rule_fires_while_its_target_is_silent(traffic: Traffic, evaluator: Evaluator,
                                                         clock: FakeClock) -> None:
    make_rule("silent", target={"service": "payments"}, metric="no_data", fire=0.5, recover=0.5,
              for_s=10)
    traffic.calls("checkout", "payments", range(BASE - 10, BASE), 10)
    cycle(evaluator, clock, traffic)
    cycle(evaluator, clock)  # nothing in the 10 s before BASE + 10
    cycle(evaluator, clock)
    assert history() == [(State.NORMAL, State.PENDING, 1.0), (State.PENDING, State.FIRING, 1.0)]


def test_a_pattern_has_a_state_per_matching_edge_and_resolves_one_that_goes_away(
        traffic: Traffic, evaluator: Evaluator, clock: FakeClock) -> None:
    rule = make_rule("into payments", target={"source": "*", "target": "payments"})
    at = int(clock())
    traffic.calls("checkout", "payments", range(at - 10, at), 10, 0.5)
    traffic.calls("fraud", "payments", range(at - 10, at), 10, 0.0)
    traffic.calls("checkout", "inventory", range(at - 10, at), 10, 0.5)
    cycle(evaluator, clock, traffic)
    fraud = '{"source":"fraud","target":"payments"}'
    assert states() == {EDGE: (State.FIRING, 0.5), fraud: (State.NORMAL, 0.0)}
    # Only the fraud edge keeps calling (its window is the 10 s before the cycle):
    at = int(clock())
    traffic.calls("fraud", "payments", range(at - 10, at), 10, 0.0)
    cycle(evaluator, clock, traffic)
    assert states() == {fraud: (State.NORMAL, 0.0)}
    gone = AlertTransition.objects.filter(rule=rule).order_by("at").last()
    assert gone is not None and (gone.from_state, gone.to_state, gone.detail) == (
        State.FIRING, State.NORMAL, "checkout -> payments is no longer in the data")
    # Nothing at all: one row for the pattern itself, NoData, until something matches again.
    cycle(evaluator, clock)
    pattern = '{"source":"*","target":"payments"}'
    assert states() == {pattern: (State.NO_DATA, None)}
    assert AlertState.objects.get().detail == "nothing in the last 10 s matches * -> payments"
    at = int(clock())
    traffic.calls("checkout", "payments", range(at - 10, at), 10, 0.0)
    cycle(evaluator, clock, traffic)
    assert states() == {EDGE: (State.NORMAL, 0.0)}
    assert history()[-1] == (State.NO_DATA, State.NORMAL, None)


def test_a_long_window_reads_the_series_keys_and_agrees_with_the_graph_read(
        traffic: Traffic, evaluator: Evaluator, clock: FakeClock) -> None:
    clock.now = BASE + 3600 + 7.3  # not on a 10 s cell: partial cells at both ends
    at = int(clock())
    traffic.calls("checkout", "payments", range(at - 300, at), 10, 0.25)
    traffic.calls("checkout", "payments", range(at - 3600, at - 3000), 4, 1.0)
    make_rule("short", window_s=300, fire=0.2, recover=0.2)
    make_rule("long", window_s=3600, fire=0.2, recover=0.2)
    make_rule("long rps", window_s=3600, metric="rps", fire=1.0, recover=1.0)
    cycle(evaluator, clock, traffic)
    found = {row.rule.name: row.value for row in AlertState.objects.select_related("rule")}
    assert found["short"] == 0.2  # round(10 * 0.25) = 2 of every 10 failed in the 300 s
    # The hour ends at the last whole 10 s cell, 7 s before the cycle: 293 s of the first
    # traffic and all 600 s of the second.
    assert found["long"] == round((293 * 2 + 600 * 4) / (293 * 10 + 600 * 4), 4)
    assert found["long rps"] == round((293 * 10 + 600 * 4) / 3600, 4)


def test_when_redis_is_down_every_state_goes_to_error_with_the_reason(
        meshui_settings: Any, stoppable_redis: StoppableRedis, clock: FakeClock) -> None:
    client = redis.Redis.from_url(stoppable_redis.url, socket_connect_timeout=1, socket_timeout=2)
    traffic = Traffic(client)
    evaluator = Evaluator(client, clock=clock, interval=10)
    make_rule("payments errors")
    make_rule("into payments", target={"source": "*", "target": "payments"})
    traffic.calls("checkout", "payments", range(BASE - 10, BASE), 10, 0.5)
    cycle(evaluator, clock, traffic)
    assert {state for state, _ in states().values()} == {State.FIRING}
    stoppable_redis.stop()
    report = evaluator.run()
    assert report.ran and "Redis" in report.error
    rows = list(AlertState.objects.all())
    assert [(row.state, row.value) for row in rows] == [(State.ERROR, None)] * 2
    assert rows[0].detail.startswith("the live graph store (Redis) is unavailable (ConnectionError")
    errors = AlertTransition.objects.filter(to_state=State.ERROR)
    assert sorted(t.from_state for t in errors) == [State.FIRING, State.FIRING]
    # Back, empty (no persistence): the rule starts over, here without data.
    stoppable_redis.start()
    clock.advance(10)
    cycle(evaluator, clock)
    assert states()[EDGE] == (State.NO_DATA, None)
    client.close()


def test_a_new_rule_with_redis_down_has_an_error_row_for_its_target(
        meshui_settings: Any, stoppable_redis: StoppableRedis, clock: FakeClock) -> None:
    client = redis.Redis.from_url(stoppable_redis.url, socket_connect_timeout=1, socket_timeout=2)
    make_rule()
    stoppable_redis.stop()
    assert Evaluator(client, clock=clock, interval=10).run().ran
    assert states() == {EDGE: (State.ERROR, None)}
    client.close()


def test_a_second_evaluator_of_the_same_cycle_skips_it(
        traffic: Traffic, redis_client: redis.Redis, clock: FakeClock) -> None:
    make_rule()
    traffic.calls("checkout", "payments", range(BASE - 10, BASE), 10, 0.5).write()
    first = Evaluator(redis_client, clock=clock, interval=10, worker="one").run()
    clock.advance(3)  # the same cycle, a little later
    second = Evaluator(redis_client, clock=clock, interval=10, worker="two").run()
    assert (first.ran, first.transitions) == (True, 1)
    assert (second.ran, second.skipped) == (False, "another evaluator holds this cycle")
    assert redis_client.get(lock_key(BASE)) == b"one"
    assert len(history()) == 1


class Unlocked(Evaluator):
    """An evaluator that never sees the other's lock: only the database guards the cycle."""

    def _lock(self, cycle: int) -> bool:
        return True


def test_without_the_lock_the_database_still_applies_a_cycle_once(
        traffic: Traffic, redis_client: redis.Redis, clock: FakeClock) -> None:
    make_rule()
    traffic.calls("checkout", "payments", range(BASE - 10, BASE), 10, 0.5).write()
    Unlocked(redis_client, clock=clock, interval=10).run()
    before = list(AlertState.objects.values_list("state", "value", "last_evaluated"))
    clock.advance(4)
    again = Unlocked(redis_client, clock=clock, interval=10).run()
    assert again.ran and again.transitions == 0
    assert list(AlertState.objects.values_list("state", "value", "last_evaluated")) == before
    assert len(history()) == 1
    clock.advance(6)  # the next cycle is evaluated as usual
    assert Unlocked(redis_client, clock=clock, interval=10).run().transitions == 1  # NoData


@pytest.fixture
def shared_traffic(meshui_settings: Any, redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_evaluators_racing_on_one_cycle_make_one_set_of_transitions(
        shared_traffic: redis.Redis, clock: FakeClock) -> None:
    """Row locks and the unique constraint, raced (PostgreSQL). SQLite's test database is
    in memory with a shared cache, whose table locks fail a second writer at once instead
    of making it wait; a real SQLite file (WAL, IMMEDIATE) serialises the two transactions,
    which the test above covers in sequence."""
    for n in range(20):
        make_rule(f"rule {n}", target={"source": "*", "target": "payments"} if n % 2 else
                  {"source": "checkout", "target": "payments"}, fire=0.1 + n / 100)
    Traffic(shared_traffic).calls("checkout", "payments", range(BASE - 10, BASE), 10, 0.5).write()
    start = threading.Barrier(2)
    reports = []

    def race() -> None:
        try:
            start.wait()
            reports.append(Unlocked(shared_traffic, clock=clock, interval=10).run())
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(reports) == 2
    assert sorted(report.transitions for report in reports) == [0, 20]
    assert AlertTransition.objects.count() == 20
    assert AlertState.objects.count() == 20


def test_a_rule_edited_while_its_cycle_was_read_is_left_to_the_next_cycle(
        traffic: Traffic, evaluator: Evaluator, clock: FakeClock) -> None:
    rule = make_rule()
    traffic.calls("checkout", "payments", range(BASE - 10, BASE), 10, 0.5).write()
    read = [rule_of(rule)]
    readings, _ = evaluator.read(read, {}, int(clock()))
    # An edit moves updated_at (the API does); the rule read before it is stale.
    type(rule).objects.filter(pk=rule.pk).update(fire=0.9, updated_at=rule.updated_at.replace(year=2031))
    assert recording.apply(read, readings, clock(), BASE) == []
    assert not AlertState.objects.exists()


def test_transitions_are_announced_after_the_commit(
        traffic: Traffic, evaluator: Evaluator, clock: FakeClock,
        django_capture_on_commit_callbacks: Any) -> None:
    make_rule()
    traffic.calls("checkout", "payments", range(BASE - 10, BASE), 10, 0.5).write()
    heard: list[Any] = []

    def listener(sender: Any, transitions: list[AlertTransition], **kwargs: Any) -> None:
        heard.extend(transitions)

    recording.transitions_recorded.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            evaluator.run()
    finally:
        recording.transitions_recorded.disconnect(listener)
    assert [(t.pk is not None, t.to_state, t.value) for t in heard] == [(True, State.FIRING, 0.5)]


def test_the_beat_task_runs_a_cycle_and_the_schedule_holds_it(
        meshui_settings: Any, traffic: Traffic) -> None:
    from django.conf import settings

    make_rule()
    report = evaluate_alerts()
    assert report["ran"] and report["rules"] == 1 and report["targets"] == 1
    assert evaluate_alerts()["skipped"] == "another evaluator holds this cycle"
    entry = settings.CELERY_BEAT_SCHEDULE["evaluate-alerts"]
    assert entry["task"] == "meshui.alerts.tasks.evaluate_alerts"
    from meshui.celery import app

    app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    assert entry["task"] in app.tasks
    assert settings.MESHUI_ALERTS_INTERVAL_S == 10
    assert entry["schedule"] == aligned(10, 1.0)


def test_beat_runs_the_evaluation_at_each_multiple_of_the_interval_plus_its_offset() -> None:
    every = aligned(10, 1.0)
    # Last run at 1001 s: the next is due at 1011, not 10 s after whenever beat started.
    assert every.due(BASE + 1.0, BASE + 10.9) == (False, pytest.approx(0.1))
    assert every.due(BASE + 1.0, BASE + 11.0) == (True, pytest.approx(10.0))
    # A run a little late stays in its tick: no second run in the same cycle.
    assert every.due(BASE + 11.2, BASE + 15.0) == (False, pytest.approx(6.0))
    # A beat that slept through ticks runs once, then keeps to the ticks.
    assert every.due(BASE + 1.0, BASE + 45.0) == (True, pytest.approx(6.0))
    with pytest.raises(ValueError):
        aligned(10, 10)


def test_what_a_worker_keeps_between_cycles_gives_the_values_a_fresh_read_gives(
        traffic: Traffic, redis_client: redis.Redis) -> None:
    start = BASE + 7200 + 3
    traffic.calls("checkout", "payments", range(start - 4000, start + 200), 10, 0.1,
                  events={"retries": 1})
    traffic.calls("frontend", "catalog", range(start - 4000, start + 200, 3), 7, 0.0)
    traffic.write()
    for n, window in enumerate((30, 60, 120, 300, 900, 3600, 605)):
        for metric in ("error_rate", "rps", "p99_ms", "retries"):
            make_rule(f"{window} {metric}", window_s=window, metric=metric, fire=0.5,
                      recover=0.5, target={"source": "*", "target": "*"} if n % 2 else
                      {"source": "checkout", "target": "payments"})
    clock = FakeClock(start)
    kept = Evaluator(redis_client, clock=clock, interval=10, cache=WindowCache())
    rule_list = [rule_of(row) for row in AlertRule.objects.all()]
    for _ in range(12):
        readings, _ = kept.read(rule_list, {}, int(clock()))
        fresh, _ = Evaluator(redis_client, clock=clock, interval=10).read(rule_list, {}, int(clock()))
        assert readings == fresh
        clock.advance(10)
    assert kept.cache.hits > 100


def test_after_a_failed_read_the_cache_forgets_and_keeps_nothing_for_a_while() -> None:
    cache = WindowCache()
    cache.keep_chunk(100, {b"x": 1}, at=500.0)
    cache.keep_block("k", {b"x": 1}, at=500.0)
    assert cache.chunk(100, 510.0) == {b"x": 1} and cache.block("k", 510.0) == {b"x": 1}
    assert cache.chunk(100, 500.0 + WindowCache.TTL_S + 1) is None  # kept at most TTL_S
    cache.failed(520.0)
    assert cache.chunk(100, 521.0) is None and cache.block("k", 521.0) is None
    cache.keep_chunk(200, {b"y": 1}, at=520.0 + WindowCache.SUSPEND_S - 1)
    assert cache.chunk(200, 600.0) is None
    cache.keep_chunk(200, {b"y": 1}, at=520.0 + WindowCache.SUSPEND_S)
    assert cache.chunk(200, 600.0) == {b"y": 1}


def test_a_trimmed_tail_keeps_the_time_of_its_first_read() -> None:
    cache = WindowCache()
    cache.keep_tail("k", Tail(3, {b"n": 9}), at=1000.0)
    cache.keep_tail("k", Tail(4, {b"n": 8}), at=1000.0 + WindowCache.TTL_S - 1)
    assert cache.tail("k", 1000.0 + WindowCache.TTL_S) == Tail(4, {b"n": 8})
    assert cache.tail("k", 1000.0 + WindowCache.TTL_S + 1) is None  # read whole again


def test_a_long_pattern_keeps_a_quiet_target_while_its_window_holds_data_then_resolves_it(
        traffic: Traffic, evaluator: Evaluator, clock: FakeClock) -> None:
    make_rule("into payments, 15 min", target={"source": "*", "target": "payments"},
              window_s=900)
    at = int(clock())
    traffic.calls("checkout", "payments", range(at - 30, at), 10, 0.5)
    cycle(evaluator, clock, traffic)
    assert states() == {EDGE: (State.FIRING, 0.5)}
    clock.advance(290)  # quiet for 5 min: not in the last 60 s, still in its 15 min
    cycle(evaluator, clock)
    assert states() == {EDGE: (State.FIRING, 0.5)}
    clock.advance(900)
    cycle(evaluator, clock)
    assert states() == {'{"source":"*","target":"payments"}': (State.NO_DATA, None)}
    last = AlertTransition.objects.order_by("pk")[1:]
    assert {(t.from_state, t.to_state, t.detail) for t in last} == {
        (State.FIRING, State.NORMAL, "checkout -> payments is no longer in the data"),
        (State.NORMAL, State.NO_DATA, "nothing in the last 60 s matches * -> payments")}


def test_a_rule_changed_outside_the_api_into_nonsense_is_skipped_not_the_cycle(
        traffic: Traffic, evaluator: Evaluator, clock: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    make_rule("broken", target={"edge": "x"})
    make_rule("inverted", recover=0.9)  # recover above fire with '>'
    make_rule("fine")
    traffic.calls("checkout", "payments", range(BASE - 10, BASE), 10, 0.5)
    cycle(evaluator, clock, traffic)
    assert [row.rule.name for row in AlertState.objects.select_related("rule")] == ["fine"]
    assert "'broken' is not evaluated: target.edge is not a target field" in caplog.text
    assert "'inverted' is not evaluated: recover (0.9) must be at most fire (0.2)" in caplog.text
