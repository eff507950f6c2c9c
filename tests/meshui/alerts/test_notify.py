"""Notifications end to end inside meshui: real evaluations of traffic in a real Valkey,
the dispatcher's groups in the database, and real receivers (an HTTP server standing in
for a webhook receiver and for Slack, aiosmtpd for email). The clock is injected."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from django.db import connection
from django.test import override_settings

from meshui.alerts.evaluator import Evaluator
from meshui.alerts.models import (
    AlertRule,
    AlertState,
    ContactPoint,
    Delivery,
    DeliveryAttempt,
    Notification,
    NotificationGroup,
    Silence,
)
from meshui.alerts.notify import delivery, dispatch, points
from meshui.alerts.states import State
from tests.clock import FakeClock
from tests.meshui.alerts.receivers import HttpReceiver, SmtpReceiver, http_receiver, smtp_receiver
from tests.meshui.alerts.traffic import BASE, Traffic, make_rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from http_receiver()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    yield from smtp_receiver()


@pytest.fixture
def traffic(meshui_settings: Any, redis_client: redis.Redis) -> Traffic:
    return Traffic(redis_client)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(BASE + 0.3)


class Mesh:
    """Cycles of traffic, evaluation and a dispatch pass, and the sending of what it made."""

    def __init__(self, traffic: Traffic, redis_client: redis.Redis, clock: FakeClock) -> None:
        self.traffic, self.clock = traffic, clock
        self.evaluator = Evaluator(redis_client, clock=clock, interval=10)
        self.made: list[int] = []

    def cycle(self, error_rate: float, *edges: tuple[str, str]) -> None:
        """Ten seconds of 100 calls a second on each edge, then an evaluation and a pass."""
        self.clock.advance(10)
        at = int(self.clock())
        for source, target in edges or (("checkout", "payments"),):
            self.traffic.calls(source, target, range(at - 10, at), 100, error_rate)
        self.traffic.write()
        assert self.evaluator.run().ran
        self.dispatch()

    def dispatch(self, at: float | None = None) -> list[int]:
        # What it made goes to the send task after the commit; in these tests (one
        # transaction) it is taken from the report.
        report = dispatch.run(self.clock() if at is None else at, lambda ids: None)
        self.made += report.created
        return report.created

    def send(self, at: float | None = None) -> list[delivery.Outcome]:
        ids, self.made = self.made, []
        return [delivery.deliver(pk, self.clock() if at is None else at) for pk in ids]


@pytest.fixture
def mesh(traffic: Traffic, redis_client: redis.Redis, clock: FakeClock) -> Mesh:
    return Mesh(traffic, redis_client, clock)


def contact_point(name: str = "on-call", kind: str = "webhook", **fields: Any) -> ContactPoint:
    return ContactPoint.objects.create(**points.check({"name": name, "kind": kind} | fields))


def firing_rule(point: ContactPoint, name: str = "payments errors", **fields: Any) -> AlertRule:
    rule = make_rule(name, **({"for_s": 10, "severity": "critical", "labels": {"team": "pay"}}
                              | fields))
    rule.contact_points.add(point)
    return rule


def test_a_firing_rule_notifies_once_in_alertmanagers_shape_then_once_resolved(
        mesh: Mesh, receiver: HttpReceiver, clock: FakeClock) -> None:
    point = contact_point(url=receiver.url)
    rule = firing_rule(point)
    mesh.cycle(0.5)  # Pending
    mesh.cycle(0.5)  # Firing: the group is made and waits group_wait (30 s)
    fired_at = clock()
    assert AlertState.objects.get().state == State.FIRING
    assert mesh.made == [] and NotificationGroup.objects.count() == 1
    mesh.cycle(0.5)
    mesh.cycle(0.5)
    assert mesh.made == []
    mesh.cycle(0.5)  # 30 s after the group was made
    assert len(mesh.made) == 1
    assert [o.state for o in mesh.send()] == [Delivery.SENT]
    [body] = receiver.bodies()
    assert body | {"alerts": "-", "groupKey": "-"} == {
        "version": "4", "groupKey": "-", "truncatedAlerts": 0, "status": "firing",
        "receiver": "on-call", "groupLabels": {"alertname": "payments errors"},
        "commonLabels": {"team": "pay", "alertname": "payments errors", "severity": "critical",
                         "source": "checkout", "target": "payments"},
        "commonAnnotations": body["alerts"][0]["annotations"],
        "externalURL": "http://localhost:8000", "alerts": "-"}
    [alert] = body["alerts"]
    assert alert["status"] == "firing" and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["annotations"]["summary"] == (
        "error_rate of checkout -> payments is 50 % (fires > 20 %)")
    assert alert["annotations"]["value"] == "0.5"
    assert alert["startsAt"] == datetime.fromtimestamp(int(fired_at), UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    assert alert["generatorURL"] == f"http://localhost:8000/alerts/rules/{rule.pk}"
    assert len(alert["fingerprint"]) == 16
    # Still firing, at 19 % too (recover is 5 %): nothing more, group interval after group
    # interval.
    for _ in range(35):
        mesh.cycle(0.19)
    assert AlertState.objects.get().state == State.FIRING
    assert mesh.made == [] and len(receiver.bodies()) == 1
    mesh.cycle(0.04)  # resolved: the next flush (group interval) sends it
    assert AlertState.objects.get().state == State.NORMAL
    for _ in range(30):
        if mesh.made:
            break
        mesh.cycle(0.0)
    mesh.send()
    bodies = receiver.bodies()
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    assert bodies[1]["alerts"][0]["status"] == "resolved"
    assert bodies[1]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    assert not NotificationGroup.objects.exists()  # nothing firing, nothing notified
    assert DeliveryAttempt.objects.filter(ok=True).count() == 2


def test_grouping_merges_alerts_that_share_their_labels_and_splits_those_that_do_not(
        mesh: Mesh, receiver: HttpReceiver) -> None:
    point = contact_point(url=receiver.url, group_wait_s=0)
    firing_rule(point, "into payments", target={"source": "*", "target": "payments"})
    firing_rule(point, "into payments, slow", target={"source": "*", "target": "payments"},
                metric="p50_ms", fire=10.0, recover=5.0)
    edges = (("checkout", "payments"), ("frontend", "payments"))
    mesh.cycle(0.5, *edges)
    mesh.cycle(0.5, *edges)
    mesh.send()
    bodies = sorted(receiver.bodies(), key=lambda b: b["groupLabels"]["alertname"])
    assert [b["groupLabels"]["alertname"] for b in bodies] == ["into payments",
                                                              "into payments, slow"]
    assert [sorted(a["labels"]["source"] for a in b["alerts"]) for b in bodies] == [
        ["checkout", "frontend"]] * 2
    assert bodies[0]["commonLabels"]["target"] == "payments"
    assert "source" not in bodies[0]["commonLabels"]


def test_group_by_every_label_makes_a_message_per_alert(mesh: Mesh,
                                                        receiver: HttpReceiver) -> None:
    point = contact_point(url=receiver.url, group_wait_s=0, group_by=["..."])
    firing_rule(point, target={"source": "*", "target": "payments"})
    edges = (("checkout", "payments"), ("frontend", "payments"))
    mesh.cycle(0.5, *edges)
    mesh.cycle(0.5, *edges)
    mesh.send()
    assert sorted(len(b["alerts"]) for b in receiver.bodies()) == [1, 1]


def test_a_silence_stops_notifications_not_evaluation(mesh: Mesh, receiver: HttpReceiver,
                                                      clock: FakeClock) -> None:
    point = contact_point(url=receiver.url, group_wait_s=0, group_interval_s=10)
    firing_rule(point)
    now = datetime.fromtimestamp(clock(), UTC)
    silence = Silence.objects.create(
        matchers=[{"name": "team", "op": "=", "value": "pay"}], starts_at=now,
        ends_at=now + timedelta(minutes=5))
    for _ in range(4):
        mesh.cycle(0.5)
    assert AlertState.objects.get().state == State.FIRING  # evaluated all along
    assert mesh.made == []
    Silence.objects.filter(pk=silence.pk).update(ends_at=datetime.fromtimestamp(clock(), UTC))
    mesh.cycle(0.5)
    mesh.send()
    assert [b["status"] for b in receiver.bodies()] == ["firing"]


def test_a_mute_time_holds_the_message_until_it_ends(mesh: Mesh, receiver: HttpReceiver,
                                                     clock: FakeClock) -> None:
    # BASE is 08:00 UTC on a Friday.
    point = contact_point(url=receiver.url, group_wait_s=0, group_interval_s=60,
                          mute_times=[{"days": ["fri"], "from": "07:00", "to": "08:05"}])
    firing_rule(point)
    for _ in range(3):
        mesh.cycle(0.5)
    assert mesh.made == []
    assert mesh.dispatch(at=BASE + 5 * 60 + 30) != []
    mesh.send(at=BASE + 5 * 60 + 30)
    assert [b["status"] for b in receiver.bodies()] == ["firing"]


def test_a_deleted_rule_resolves_what_it_notified(mesh: Mesh, receiver: HttpReceiver) -> None:
    point = contact_point(url=receiver.url, group_wait_s=0, group_interval_s=10)
    rule = firing_rule(point)
    mesh.cycle(0.5)
    mesh.cycle(0.5)
    mesh.send()
    rule.delete()
    mesh.cycle(0.5)
    mesh.send()
    assert [b["status"] for b in receiver.bodies()] == ["firing", "resolved"]


def notified(mesh: Mesh, receiver: HttpReceiver, **fields: Any) -> Notification:
    point = contact_point(url=receiver.url, group_wait_s=0, **fields)
    firing_rule(point)
    mesh.cycle(0.5)
    mesh.cycle(0.5)
    [pk] = mesh.made
    return Notification.objects.get(pk=pk)


def test_a_receiver_answering_500_is_retried_with_backoff_and_every_attempt_logged(
        mesh: Mesh, receiver: HttpReceiver, clock: FakeClock) -> None:
    receiver.answer((500, "down"), (503, ""))
    message = notified(mesh, receiver)
    now = clock()
    first = delivery.deliver(message.pk, now)
    assert first.state == Delivery.PENDING and first.retry_in is not None
    assert 2.0 <= first.retry_in <= 2.5  # MESHUI_NOTIFY_BACKOFF_S, plus its jitter
    # Not due yet: a second worker handed it now does nothing.
    assert delivery.deliver(message.pk, now + 1.0).state == "skipped"
    second = delivery.deliver(message.pk, now + 3.0)
    assert second.state == Delivery.PENDING and second.retry_in is not None
    assert 4.0 <= second.retry_in <= 5.0
    third = delivery.deliver(message.pk, now + 3.0 + 6.0)
    assert third.state == Delivery.SENT
    attempts = list(DeliveryAttempt.objects.order_by("at"))
    assert [(a.ok, a.status_code, a.permanent) for a in attempts] == [
        (False, 500, False), (False, 503, False), (True, 200, False)]
    assert attempts[0].detail == "HTTP 500: down"
    assert len(receiver.received) == 3
    point = ContactPoint.objects.get()
    assert point.failing_since is None and point.failing_reason == ""


def test_a_receiver_answering_400_marks_the_contact_point_failing_saying_why(
        mesh: Mesh, receiver: HttpReceiver, clock: FakeClock) -> None:
    receiver.answer((400, "unknown field \"alerts\""))
    message = notified(mesh, receiver)
    outcome = delivery.deliver(message.pk, clock())
    assert outcome.state == Delivery.FAILED and outcome.retry_in is None
    point = ContactPoint.objects.get()
    assert point.failing_since is not None
    assert point.failing_reason == 'HTTP 400: unknown field "alerts"'
    # A test that gets through clears it.
    result, attempt = delivery.test(point, clock())
    assert result.ok and attempt.status == "test"
    point.refresh_from_db()
    assert point.failing_since is None and point.failing_reason == ""
    assert receiver.bodies()[-1]["alerts"][0]["labels"]["alertname"] == "TestAlert"


@override_settings(MESHUI_NOTIFY_MAX_ATTEMPTS=2)
def test_retries_are_given_up_after_the_last_attempt_and_the_point_marked_failing(
        mesh: Mesh, receiver: HttpReceiver, clock: FakeClock) -> None:
    receiver.answer((502, ""), (502, ""))
    message = notified(mesh, receiver)
    assert delivery.deliver(message.pk, clock()).state == Delivery.PENDING
    assert delivery.deliver(message.pk, clock() + 60).state == Delivery.FAILED
    point = ContactPoint.objects.get()
    assert point.failing_reason == "gave up after 2 attempts; the last: HTTP 502"


def test_a_receiver_that_is_down_is_transient(mesh: Mesh, receiver: HttpReceiver,
                                              clock: FakeClock) -> None:
    message = notified(mesh, receiver)
    ContactPoint.objects.update(config={"url": "http://127.0.0.1:9/hook"})  # discard port
    outcome = delivery.deliver(message.pk, clock())
    assert outcome.state == Delivery.PENDING and outcome.result is not None
    assert outcome.result.detail.startswith("ConnectError")


def test_a_send_whose_worker_died_is_handed_out_again_after_its_lease(
        mesh: Mesh, receiver: HttpReceiver, clock: FakeClock) -> None:
    message = notified(mesh, receiver)
    Notification.objects.filter(pk=message.pk).update(
        state=Delivery.SENDING, lease_until=datetime.fromtimestamp(clock() + 40, UTC))
    assert delivery.due(clock()) == []
    assert delivery.due(clock() + 41) == [message.pk]
    assert delivery.deliver(message.pk, clock() + 41).state == Delivery.SENT


def test_two_evaluations_of_one_cycle_send_one_notification(
        traffic: Traffic, redis_client: redis.Redis, clock: FakeClock,
        receiver: HttpReceiver) -> None:
    """Two workers run the same beat task one after the other (SQLite serialises them; the
    race itself is the PostgreSQL test below)."""
    point = contact_point(url=receiver.url, group_wait_s=0)
    firing_rule(point, for_s=0)
    made: list[int] = []
    traffic.calls("checkout", "payments", range(BASE - 10, BASE), 100, 0.5).write()
    for _ in range(2):
        Evaluator(redis_client, clock=clock, interval=10).run()
        made += dispatch.run(clock(), lambda ids: None).created
        for pk in made:
            delivery.deliver(pk, clock())
    assert len(receiver.received) == 1


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_on_one_cycle_send_one_notification(
        traffic: Traffic, redis_client: redis.Redis, clock: FakeClock,
        receiver: HttpReceiver) -> None:
    point = contact_point(url=receiver.url, group_wait_s=0)
    for n in range(5):
        firing_rule(point, f"rule {n}", for_s=0)
    traffic.calls("checkout", "payments", range(BASE - 10, BASE), 100, 0.5).write()
    start = threading.Barrier(2)
    made: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            start.wait()
            Evaluator(redis_client, clock=clock, interval=10).run()
            start.wait()
            dispatch.run(clock(), lambda ids: made.extend(ids))
            start.wait()
            with lock:
                ids = list(made)
            for pk in ids:
                delivery.deliver(pk, clock())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Five rules with one name each: five groups, five messages, each sent once.
    assert Notification.objects.count() == 5
    assert len(receiver.received) == 5
    assert sorted(b["groupLabels"]["alertname"] for b in receiver.bodies()) == [
        f"rule {n}" for n in range(5)]


def test_email_goes_through_a_real_smtp_server(mesh: Mesh, smtp: SmtpReceiver,
                                               clock: FakeClock) -> None:
    with override_settings(EMAIL_HOST=smtp.host, EMAIL_PORT=smtp.port):
        point = contact_point("mail", "email", address="oncall@example.com, lead@example.com",
                              group_wait_s=0)
        firing_rule(point)
        mesh.cycle(0.5)
        mesh.cycle(0.5)
        assert [o.state for o in mesh.send()] == [Delivery.SENT]
        [(envelope, message)] = smtp.messages
        assert sorted(envelope.rcpt_tos) == ["lead@example.com", "oncall@example.com"]
        assert message["Subject"] == "[FIRING:1] payments errors (critical)"
        text = message.get_payload(decode=True).decode()
        assert "FIRING checkout -> payments: error_rate of checkout -> payments is 50 %" in text
        # A refused mailbox is a permanent error: the point is failing, saying why.
        ContactPoint.objects.update(config={"address": "nobody@refused.example"})
        result, _ = delivery.test(ContactPoint.objects.get(), clock())
        assert not result.ok and result.permanent
        point.refresh_from_db()
        assert point.failing_since is not None and "550" in point.failing_reason
        assert "nobody@refused.example" in point.failing_reason


def test_an_smtp_server_that_is_down_is_transient(clock: FakeClock, meshui_settings: Any) -> None:
    with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=9):
        point = contact_point("mail", "email", address="oncall@example.com")
        result, _ = delivery.test(point, clock())
    assert not result.ok and not result.permanent
    point.refresh_from_db()
    assert point.failing_since is None


def test_slack_gets_its_message_from_a_local_stand_in_with_names_escaped(
        mesh: Mesh, clock: FakeClock) -> None:
    stand_in = http_receiver("/services/T000/B000/XXXX")
    slack = next(stand_in)
    try:
        point = contact_point("chat", "slack", url=slack.url, group_wait_s=0)
        firing_rule(point, "<b>payments</b> & co")
        mesh.cycle(0.5)
        mesh.cycle(0.5)
        assert [o.state for o in mesh.send()] == [Delivery.SENT]
        [got] = slack.received
        assert got.path == "/services/T000/B000/XXXX"
        assert got.body["text"] == "[FIRING:1] &lt;b&gt;payments&lt;/b&gt; &amp; co (critical)"
        assert "<b>" not in got.raw.decode()
        [head, items, link] = got.body["blocks"]
        assert "checkout -&gt; payments" in items["text"]["text"]
        assert link["elements"][0]["text"] == (
            "<http://localhost:8000/alerts|Open the alerts in meshui>")
        # Slack's answer to a removed webhook: permanent.
        slack.answer((404, "no_service"))
        result, _ = delivery.test(point, clock())
        assert not result.ok and result.permanent and result.detail == "HTTP 404: no_service"
        point.refresh_from_db()
        assert point.failing_reason == "HTTP 404: no_service"
    finally:
        next(stand_in, None)


def test_a_data_source_failing_does_not_resolve_what_fired(mesh: Mesh, receiver: HttpReceiver,
                                                           clock: FakeClock) -> None:
    point = contact_point(url=receiver.url, group_wait_s=0, group_interval_s=10)
    firing_rule(point)
    mesh.cycle(0.5)
    mesh.cycle(0.5)
    mesh.send()
    state = AlertState.objects.get()
    # As a failed read records it (the evaluator's Error tests): the state, its firing kept.
    assert state.firing_since is not None
    AlertState.objects.update(state=State.ERROR, value=None, detail="Redis is unavailable")
    clock.advance(60)
    assert mesh.dispatch() == []
    assert [b["status"] for b in receiver.bodies()] == ["firing"]


def test_firing_since_is_kept_through_recovering_and_error_and_cleared_after() -> None:
    from meshui.alerts.recording import _Row, firing_since
    from meshui.alerts.states import Status

    began = datetime.fromtimestamp(BASE, UTC)

    def row(state: State, since: datetime | None) -> _Row:
        return _Row(1, "k", state, began, 0.5, "", began, since)

    assert firing_since(row(State.PENDING, None), Status(State.FIRING, BASE + 10)) == (
        datetime.fromtimestamp(BASE + 10, UTC))
    assert firing_since(row(State.FIRING, began), Status(State.RECOVERING, BASE + 20)) == began
    assert firing_since(row(State.FIRING, began), Status(State.ERROR, BASE + 20)) == began
    assert firing_since(row(State.ERROR, began), Status(State.FIRING, BASE + 30)) == began
    assert firing_since(row(State.RECOVERING, began), Status(State.NORMAL, BASE + 30)) is None
    assert firing_since(row(State.FIRING, began), Status(State.NO_DATA, BASE + 30)) is None
