"""Alertmanager's grouping, pure: group wait, group interval, repeat, resolved messages,
silences and mute times; and the matchers and mute times themselves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meshui.alerts.notify import labels, matchers, mute
from meshui.alerts.notify.grouping import FIRING, RESOLVED, Alert, Group, Timing, decide

TIMING = Timing(wait=30, interval=300, repeat=4 * 3600)
NONE: frozenset[str] = frozenset()


def alert(name: str, starts: float = 0.0) -> Alert:
    return Alert(name, {"alertname": "errors", "target": name}, {"summary": name}, starts, 1)


def active(*alerts: Alert) -> dict[str, Alert]:
    return {a.fingerprint: a for a in alerts}


def test_a_new_group_waits_group_wait_then_sends_every_alert_that_arrived_meanwhile() -> None:
    group = Group(created_at=100.0)
    early = decide(group, active(alert("a")), NONE, 110.0, TIMING)
    assert early.message is None and early.next_at == 130.0 and early.group == group
    flushed = decide(group, active(alert("a"), alert("b", 5)), NONE, 130.0, TIMING)
    assert flushed.message is not None and flushed.message.status == FIRING
    assert [a.fingerprint for a in flushed.message.firing] == ["a", "b"]
    assert flushed.next_at == 430.0
    assert flushed.group is not None and set(flushed.group.notified) == {"a", "b"}


def test_an_unchanged_group_is_quiet_until_the_repeat_interval() -> None:
    sent = decide(Group(0.0), active(alert("a")), NONE, 30.0, TIMING).group
    assert sent is not None
    quiet = decide(sent, active(alert("a")), NONE, 330.0, TIMING)
    assert quiet.message is None and quiet.next_at == 630.0
    assert quiet.group is not None
    again = decide(quiet.group, active(alert("a")), NONE, 30.0 + 4 * 3600, TIMING)
    assert again.message is not None and again.message.status == FIRING


def test_a_new_alert_in_a_notified_group_waits_for_the_group_interval_not_group_wait() -> None:
    sent = decide(Group(0.0), active(alert("a")), NONE, 30.0, TIMING).group
    assert sent is not None
    before = decide(sent, active(alert("a"), alert("b")), NONE, 200.0, TIMING)
    assert before.message is None and before.next_at == 330.0
    at = decide(sent, active(alert("a"), alert("b")), NONE, 330.0, TIMING)
    assert at.message is not None and len(at.message.firing) == 2


def test_one_resolved_message_when_the_last_alert_resolves_and_the_group_is_dropped() -> None:
    sent = decide(Group(0.0), active(alert("a"), alert("b")), NONE, 30.0, TIMING).group
    assert sent is not None
    partly = decide(sent, active(alert("b")), NONE, 330.0, TIMING)
    assert partly.message is not None and partly.message.status == FIRING
    assert [a.fingerprint for a in partly.message.resolved] == ["a"]
    assert partly.group is not None
    done = decide(partly.group, {}, NONE, 630.0, TIMING)
    assert done.message is not None and done.message.status == RESOLVED
    assert [a.fingerprint for a in done.message.resolved] == ["b"]
    assert done.group is None and done.next_at is None


def test_without_send_resolved_a_resolving_group_goes_quietly() -> None:
    timing = Timing(30, 300, 3600, send_resolved=False)
    sent = decide(Group(0.0), active(alert("a")), NONE, 30.0, timing).group
    assert sent is not None
    done = decide(sent, {}, NONE, 330.0, timing)
    assert done.message is None and done.group is None


def test_silenced_alerts_are_left_out_neither_firing_nor_resolved() -> None:
    group = Group(0.0)
    muted = decide(group, active(alert("a")), frozenset({"a"}), 30.0, TIMING)
    assert muted.message is None and muted.group is not None and muted.group.notified == {}
    sent = decide(Group(0.0), active(alert("a"), alert("b")), NONE, 30.0, TIMING).group
    assert sent is not None
    # b silenced while firing: no "resolved" for it, and a is unchanged: nothing to send.
    quiet = decide(sent, active(alert("a"), alert("b")), frozenset({"b"}), 330.0, TIMING)
    assert quiet.message is None
    assert quiet.group is not None and set(quiet.group.notified) == {"a", "b"}
    # It resolves while silenced: it leaves without a message.
    gone = decide(quiet.group, active(alert("a")), frozenset({"b"}), 630.0, TIMING)
    assert gone.message is None
    assert gone.group is not None and set(gone.group.notified) == {"a"}


def test_a_mute_time_holds_messages_and_the_first_flush_after_it_sends_them() -> None:
    muted = decide(Group(0.0), active(alert("a")), NONE, 30.0, TIMING, muted=True)
    assert muted.message is None and muted.group is not None and muted.next_at == 330.0
    after = decide(muted.group, active(alert("a")), NONE, 330.0, TIMING)
    assert after.message is not None and after.message.status == FIRING


def test_alert_labels_fingerprints_and_group_keys() -> None:
    found = labels.alert_labels("payments errors", "critical", {"team": "pay"},
                                {"source": "checkout", "target": "payments"})
    assert found == {"team": "pay", "alertname": "payments errors", "severity": "critical",
                     "source": "checkout", "target": "payments"}
    assert labels.fingerprint(found) == labels.fingerprint(dict(reversed(found.items())))
    assert labels.group_labels(found, ["alertname", "cluster"]) == {
        "alertname": "payments errors", "cluster": ""}
    assert labels.group_labels(found, ["..."]) == found


@pytest.mark.parametrize(("raw", "alert_labels", "matches"), [
    ([{"name": "alertname", "op": "=", "value": "x"}], {"alertname": "x"}, True),
    # A negative matcher alone would match the empty label set (refused below): with another.
    ([{"name": "alertname", "op": "!=", "value": "x"}, {"name": "team", "value": "pay"}],
     {"alertname": "y", "team": "pay"}, True),
    ([{"name": "target", "op": "=~", "value": "pay.*"}], {"target": "payments"}, True),
    # Anchored, as Alertmanager's.
    ([{"name": "target", "op": "=~", "value": "pay"}], {"target": "payments"}, False),
    ([{"name": "target", "op": "!~", "value": "pay.*"}, {"name": "team", "value": "pay"}],
     {"target": "catalog", "team": "pay"}, True),
    ([{"name": "team", "op": "=", "value": "pay"}, {"name": "severity", "value": "critical"}],
     {"team": "pay", "severity": "warning"}, False),
])
def test_matchers(raw: list[dict[str, str]], alert_labels: dict[str, str], matches: bool) -> None:
    assert matchers.all_match(matchers.parse(raw), alert_labels) is matches


@pytest.mark.parametrize(("raw", "field", "words"), [
    ([], "matchers[0]", "at least one"),
    ([{"name": "1x", "value": "a"}], "matchers[0].name", "label name"),
    ([{"name": "a", "op": "~", "value": "a"}], "matchers[0].op", "op is one of"),
    ([{"name": "a", "op": "=~", "value": "("}], "matchers[0].value", "regular expression"),
    ([{"name": "a", "op": "=~", "value": ".*"}], "matchers[0]", "silence every alert"),
    ([{"name": "a", "op": "!=", "value": "x"}], "matchers[0]", "silence every alert"),
])
def test_bad_matchers_name_their_field(raw: list[dict[str, str]], field: str, words: str) -> None:
    with pytest.raises(matchers.MatcherProblem) as caught:
        matchers.parse(raw)
    assert caught.value.field == field and words in str(caught.value)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_mute_times_by_day_time_and_zone_including_across_midnight() -> None:
    nights = mute.parse([{"days": ["fri"], "from": "22:00", "to": "06:00", "timezone": "UTC"}])
    assert mute.muted(nights, at("2026-12-04T23:00"))  # a Friday night
    assert mute.muted(nights, at("2026-12-05T05:59"))  # the Saturday morning after it
    assert not mute.muted(nights, at("2026-12-05T06:00"))
    assert not mute.muted(nights, at("2026-12-03T23:00"))  # a Thursday
    paris = mute.parse([{"from": "09:00", "to": "10:00", "timezone": "Europe/Paris"}])
    assert mute.muted(paris, at("2026-12-03T08:30"))  # 09:30 in Paris (UTC+1)
    assert not mute.muted(paris, at("2026-12-03T09:30"))


@pytest.mark.parametrize(("raw", "field"), [
    ([{"from": "25:00", "to": "06:00"}], "mute_times[0].from"),
    ([{"from": "10:00", "to": "10:00"}], "mute_times[0].to"),
    ([{"days": ["funday"], "from": "10:00", "to": "11:00"}], "mute_times[0].days"),
    ([{"from": "10:00", "to": "11:00", "timezone": "Mars/Olympus"}], "mute_times[0].timezone"),
])
def test_bad_mute_times_name_their_field(raw: list[dict[str, str]], field: str) -> None:
    with pytest.raises(mute.MuteProblem) as caught:
        mute.parse(raw)
    assert caught.value.field == field
