"""meshctl's notification vocabulary matches the server's; matchers, mute times, times and
destinations read right."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meshui.alerts.models import KINDS
from meshui.alerts.notify import api, labels, matchers, mute
from meshui.cli import notify_input, notify_text
from meshui.cli.errors import CliError
from meshui.cli.notify_input import (
    POINT_FLAGS,
    SILENCE_FLAGS,
    flag_of,
    parse_instant,
    parse_matcher,
    parse_mute,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_the_vocabulary_is_the_server_s() -> None:
    assert notify_input.MATCHER_OPS == matchers.OPS
    assert notify_input.KINDS == KINDS
    assert notify_input.DAYS == mute.DAYS
    assert notify_input.EVERY_LABEL == labels.EVERY_LABEL
    assert set(notify_input.SILENCE_STATES) == set(api.STATE_ORDER)
    assert notify_text.MATCHING_MAX == api.MATCHING_MAX


@pytest.mark.parametrize("text, matcher", [
    ("alertname=payments errors", ("alertname", "=", "payments errors")),
    ("service=~pay.*", ("service", "=~", "pay.*")),
    ("team!=web", ("team", "!=", "web")),
    ("team!~w.b", ("team", "!~", "w.b")),
    ("url=a=b", ("url", "=", "a=b")),
    ("team=", ("team", "=", "")),
    (" team = pay ", ("team", "=", "pay")),
])
def test_a_matcher_is_name_op_value_with_the_longest_op(text: str, matcher: tuple[str, ...]
                                                        ) -> None:
    assert parse_matcher(text) == dict(zip(("name", "op", "value"), matcher, strict=True))


@pytest.mark.parametrize("text", ["team", "=pay", "1team=pay", "te am=pay", "team~pay"])
def test_what_is_not_a_matcher_is_refused(text: str) -> None:
    with pytest.raises(CliError):
        parse_matcher(text)


@pytest.mark.parametrize("spec, days, start, end, zone", [
    ("sat,sun 00:00-24:00", ["sat", "sun"], "00:00", "24:00", "UTC"),
    ("mon-fri 18:00-09:00 Europe/Paris", ["mon", "tue", "wed", "thu", "fri"], "18:00", "09:00",
     "Europe/Paris"),
    ("fri-mon 22:00-06:00", ["mon", "fri", "sat", "sun"], "22:00", "06:00", "UTC"),
    ("MON,wed-thu 12:00-13:00", ["mon", "wed", "thu"], "12:00", "13:00", "UTC"),
    ("09:00-17:00 America/New_York", [], "09:00", "17:00", "America/New_York"),
])
def test_a_mute_time_is_days_a_time_range_and_a_zone(spec: str, days: list[str], start: str,
                                                      end: str, zone: str) -> None:
    parsed = parse_mute(spec)
    assert parsed == {"days": days, "from": start, "to": end, "timezone": zone}
    mute.parse([parsed])  # the server takes it


@pytest.mark.parametrize("spec", ["weekends", "sat 9-10", "sab 09:00-10:00", "sat,,sun 01:00-02:00",
                                  "mon-fri 09:00 17:00"])
def test_what_is_not_a_mute_time_is_refused(spec: str) -> None:
    with pytest.raises(CliError):
        parse_mute(spec)


def test_a_time_is_sent_in_utc_and_one_without_an_offset_is_local() -> None:
    assert parse_instant("2026-12-03T18:00Z", "--until") == "2026-12-03T18:00:00Z"
    assert parse_instant("2026-12-03T18:00:00+01:00", "--until") == "2026-12-03T17:00:00Z"
    local = datetime(2026, 12, 3, 18, 0).astimezone()
    assert parse_instant("2026-12-03 18:00", "--until") == local.astimezone(UTC).isoformat(
    ).replace("+00:00", "Z")
    with pytest.raises(CliError):
        parse_instant("tomorrow", "--until")


def test_a_refused_field_is_named_as_the_flag_that_set_it() -> None:
    assert flag_of("silence.matchers[1].value", SILENCE_FLAGS, False) == "the 2nd --matcher"
    assert flag_of("silence.matchers[0]", SILENCE_FLAGS, False) == "the 1st --matcher"
    assert flag_of("silence.ends_at", SILENCE_FLAGS, False) == "--until"
    assert flag_of("contact_point.mute_times[10].timezone", POINT_FLAGS, False) == "the 11th --mute"
    assert flag_of("contact_point.mute_times[21]", POINT_FLAGS, False) == "the 22nd --mute"
    assert flag_of("contact_point.group_wait_s", POINT_FLAGS, False) == "--group-wait"
    assert flag_of("contact_point.group_wait_s", POINT_FLAGS, True) == "group_wait_s"


@pytest.mark.parametrize("point, shown", [
    ({"kind": "webhook", "url": "https://user:pw@alerts.example.com:8443/hook?token=s"},
     "https://alerts.example.com:8443/hook?…"),
    ({"kind": "webhook", "url": "http://h.example"}, "http://h.example"),
    ({"kind": "slack", "url": "https://hooks.slack.com/services/T0/B0/SECRET"},
     "https://hooks.slack.com/…"),
    ({"kind": "email", "address": "a@example.com, b@example.com"}, "a@example.com, b@example.com"),
    ({"kind": "webhook", "url": "not a url"}, "?"),
])
def test_a_destination_leaves_out_what_may_be_a_secret(point: dict[str, str], shown: str) -> None:
    assert notify_text.destination(point) == shown


def test_a_silence_counts_what_it_matches_and_what_of_that_fires() -> None:
    matching = [{"state": "Firing"}, {"state": "Normal"}, {"state": "Recovering"}]
    assert notify_text.matches_text(matching) == "3 (2 firing)"
    assert notify_text.matches_text([{"state": "Normal"}] * 50) == "50+"
    assert notify_text.matches_text([]) == "0"
    silence = {"id": 4, "state": "active", "ends_at": "2026-12-03T14:00:00Z",
               "matching": matching[:1]}
    assert notify_text.silence_line(silence, "created", NOW) == (
        "silence 4 created: active until 2026-12-03 14:00:00 UTC (in 2h), matching 1 alert:")
