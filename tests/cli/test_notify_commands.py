"""meshctl's silence, contact-points and notifications commands against a real meshui: a
real webhook receiver for the tests and the notifications, the real evaluator and dispatch
pass over traffic in the suite's embedded Valkey."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from meshui.accounts.roles import Role
from meshui.alerts.models import AlertRule, ContactPoint, Silence
from meshui.alerts.notify import delivery, dispatch
from tests.cli.conftest import Meshctl, token_for, write_file
from tests.cli.test_alert_commands import PAYMENTS, cells, created, evaluate, payments_failing
from tests.meshui.alerts.receivers import HttpReceiver, http_receiver
from tests.meshui.conftest import redis_client  # noqa: F401  (a fixture)

DEAD = "http://127.0.0.1:9"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from http_receiver()


def made(meshctl: Meshctl, *argv: str) -> dict[str, Any]:
    result = meshctl(*argv, "-o", "json")
    assert result.code == 0, result.err
    return result.json()  # type: ignore[no-any-return]


def firing_payments(meshctl: Meshctl, client: redis.Redis, *extra: str) -> tuple[dict[str, Any],
                                                                                 int]:
    """The payments rule, evaluated once while half of checkout -> payments' calls fail."""
    rule = created(meshctl, *PAYMENTS, *extra)
    at = int(time.time()) - 30
    payments_failing(client, at)
    evaluate(client, at)
    return rule, at


def test_a_webhook_contact_point_is_created_listed_tested_and_shows_why_it_fails(
    meshctl: Meshctl, receiver: HttpReceiver
) -> None:
    assert meshctl("contact-points").out.startswith("no contact point yet: meshctl "
                                                    "contact-points create NAME --kind webhook")
    result = meshctl("contact-points", "create", "on-call", "--kind", "webhook", "--url",
                     receiver.url + "?token=secret")
    assert result.code == 0, result.err
    point = ContactPoint.objects.get()
    where = receiver.url.removesuffix("/hook")
    assert result.out == (f"contact point {point.pk} 'on-call' created (webhook to {where}/hook?…)"
                          f"; try it: meshctl contact-points test {point.pk}\n")
    header, row = meshctl("contact-points").out.splitlines()
    assert header.split() == ["ID", "NAME", "KIND", "DESTINATION", "STATUS", "LAST", "ATTEMPT",
                              "RULES"]
    assert cells(row) == [str(point.pk), "on-call", "webhook", f"{where}/hook?…", "untested",
                          "-", "-"]

    tested = meshctl("contact-points", "test", "on-call")
    assert tested.code == 0, tested.err
    assert re.fullmatch(r"test message to 'on-call' delivered: HTTP 200 \([\d.]+ms\)\n",
                        tested.out), tested.out
    [body] = receiver.bodies()
    assert body["alerts"][0]["labels"]["alertname"] == "TestAlert"

    receiver.answer((401, "bad token"))
    failed = meshctl("contact-points", "test", str(point.pk))
    assert (failed.code, failed.out) == (1, "")
    assert failed.err == (f"meshctl: test message to contact point {point.pk} failed: HTTP 401: "
                          "bad token; it is marked failing until a message gets through: fix "
                          "it and test again\n")
    lines = meshctl("contact-points").out.splitlines()
    assert cells(lines[1])[4:6][0] == "failing" and cells(lines[1])[5].endswith(" ago failed")
    assert re.fullmatch(r"on-call: failing since \d+s ago: HTTP 401: bad token", lines[2])
    assert meshctl("contact-points", "-o", "json").json() == meshctl.api("/alerts/contact-points")

    attempts = meshctl("contact-points", "attempts", "on-call").out.splitlines()
    assert attempts[0].split() == ["AT", "RESULT", "FOR", "CODE", "TOOK", "DETAIL"]
    assert cells(attempts[1])[1:4] + cells(attempts[1])[5:] == [
        "failed (permanent)", "test", "401", "HTTP 401: bad token"]
    assert cells(attempts[2])[1:4] + cells(attempts[2])[5:] == ["ok", "test", "200", "HTTP 200"]
    one = meshctl("contact-points", "attempts", str(point.pk), "--limit", "1", "-o", "json")
    assert one.json() == meshctl.api(f"/alerts/contact-points/{point.pk}/attempts?limit=1")
    as_json = meshctl("contact-points", "test", "on-call", "-o", "json")
    assert as_json.code == 0 and as_json.json()["ok"] is True


def test_a_transient_test_failure_says_a_retry_may_help(meshctl: Meshctl) -> None:
    made(meshctl, "contact-points", "create", "nowhere", "--kind", "webhook", "--url", DEAD)
    failed = meshctl("contact-points", "test", "nowhere")
    assert failed.code == 1
    assert failed.err.startswith("meshctl: test message to 'nowhere' failed: ")
    assert failed.err.endswith("; a transient failure: retrying may help\n")


def test_contact_point_flags_make_the_api_s_body(meshctl: Meshctl) -> None:
    mail = made(meshctl, "contact-points", "create", "mail", "--kind", "email", "--address",
                "a@example.com,b@example.com", "--no-send-resolved", "--group-by",
                "alertname,service", "--group-wait", "0", "--group-interval", "1m",
                "--repeat-interval", "2h", "--mute", "sat,sun 00:00-24:00",
                "--mute", "Mon-Fri 18:00-09:00 Europe/Paris")
    assert mail == meshctl.api(f"/alerts/contact-points/{mail['id']}")
    assert {key: mail[key] for key in ("kind", "address", "send_resolved", "group_by",
                                       "group_wait_s", "group_interval_s", "repeat_interval_s",
                                       "mute_times")} == {
        "kind": "email", "address": "a@example.com, b@example.com", "send_resolved": False,
        "group_by": ["alertname", "service"], "group_wait_s": 0, "group_interval_s": 60,
        "repeat_interval_s": 7200, "mute_times": [
            {"days": ["sat", "sun"], "from": "00:00", "to": "24:00", "timezone": "UTC"},
            {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "18:00", "to": "09:00",
             "timezone": "Europe/Paris"}]}
    slack = meshctl("contact-points", "create", "chat", "--kind", "slack", "--url",
                    "https://hooks.slack.com/services/T0/B0/SECRET")
    assert "(slack to https://hooks.slack.com/…)" in slack.out and "SECRET" not in slack.out
    assert "SECRET" not in meshctl("contact-points").out


def test_a_contact_point_the_server_refuses_names_the_flag(meshctl: Meshctl, tmp_path: Path
                                                            ) -> None:
    def refused(*argv: str) -> str:
        result = meshctl("contact-points", "create", "x", *argv)
        assert (result.code, result.out) == (1, ""), result.err
        return result.err

    assert refused("--kind", "webhook", "--url", "ftp://x") == (
        "meshctl: --url: the url must be http:// or https:// with a host, at most 2000 "
        "characters; nothing was saved\n")
    assert refused("--kind", "email", "--address", "not-an-address") == (
        "meshctl: --address: 'not-an-address' is not an email address; nothing was saved\n")
    assert refused("--kind", "webhook", "--url", "http://h.example/x", "--mute",
                   "00:00-06:00", "--mute", "22:00-23:00 Mars/Base").startswith(
        "meshctl: the 2nd --mute: 'Mars/Base' is not a time zone")
    assert refused("--kind", "webhook", "--url", "http://h.example/x", "--repeat-interval",
                   "1m", "--group-interval", "5m") == (
        "meshctl: --repeat-interval: repeat_interval_s is at least group_interval_s; nothing "
        "was saved\n")
    assert not ContactPoint.objects.exists()
    for argv, said in ((["--kind", "email", "--url", "http://x"], "needs --address"),
                       (["--kind", "webhook", "--url", "http://x", "--address", "a@b.c"],
                        "takes --url, not --address"),
                       (["--url", "http://x"], "needs --kind"),
                       (["--kind", "webhook", "--url", "http://x", "--mute", "weekends"],
                        "give [DAYS] HH:MM-HH:MM [TIMEZONE]"),
                       (["--kind", "webhook", "--url", "http://x", "--mute", "sun-sat 1:00-2:00"],
                        "give [DAYS] HH:MM-HH:MM"),
                       (["--kind", "webhook", "--url", "http://x", "--mute", "sab 01:00-02:00"],
                        "days are mon, tue"),
                       (["-f", "point.yaml"], "with -f FILE or with flags, not both")):
        result = meshctl("contact-points", "create", "x", *argv, MESHUI_URL=DEAD)
        assert result.code == 2 and said in result.err, (argv, result.err)

    body = {"name": "hook", "kind": "webhook", "url": "http://h.example/x", "group_wait_s": 5}
    from_file = meshctl("contact-points", "create", "-f", "-", stdin=json.dumps(body))
    assert from_file.code == 0, from_file.err
    exported = meshctl("contact-points", "-o", "json").json()["contact_points"][0]
    again = meshctl("contact-points", "create", "-f",
                    write_file(tmp_path, "p.json", json.dumps(exported)))
    assert again.err == (f"meshctl: {tmp_path}/p.json: name: a contact point named 'hook' "
                         f"exists already (id {exported['id']}); nothing was saved\n")
    viewer = meshctl("contact-points", "create", "y", "--kind", "webhook", "--url", "http://x.y",
                     MESHUI_TOKEN=token_for("vic", Role.VIEWER))
    assert viewer.code == 1 and "editing contact points needs the operator role" in viewer.err


def test_rules_name_contact_points_and_a_deleted_one_says_which_rules_it_leaves(
    meshctl: Meshctl
) -> None:
    point = made(meshctl, "contact-points", "create", "on-call", "--kind", "webhook", "--url",
                 "http://h.example/x")
    rule = created(meshctl, *PAYMENTS, "--contact-point", "on-call")
    assert rule["contact_points"] == [point["id"]]
    missing = meshctl("alert", "create", *PAYMENTS[1:], "other", "--contact-point", "pager")
    assert (missing.code, missing.err) == (1, "meshctl: --contact-point 'pager': there is no "
                                              "contact point of that name (there are: "
                                              "'on-call')\n")
    assert meshctl("contact-points").out.splitlines()[1].endswith(f"   {rule['id']}")
    gone = meshctl("contact-points", "delete", "on-call")
    assert (gone.code, gone.out) == (0, f"contact point {point['id']} 'on-call' deleted; rule "
                                        f"{rule['id']} no longer notifies it\n")
    assert AlertRule.objects.get().contact_points.count() == 0
    again = meshctl("contact-points", "delete", "on-call")
    assert again.err == ("meshctl: there is no contact point named 'on-call'; there is no "
                         "contact point yet\n")
    assert meshctl("contact-points", "test", "99999").err == (
        "meshctl: there is no contact point 99999\n")


def test_a_silence_mutes_the_alerts_it_matches_until_it_is_expired(
    meshctl: Meshctl, redis_client: redis.Redis  # noqa: F811
) -> None:
    assert meshctl("silence").out == "no active or pending silence\n"
    rule, _ = firing_payments(meshctl, redis_client)
    result = meshctl("silence", "create", "--matcher", "alertname=payments errors", "--matcher",
                     "target=~pay.*", "--duration", "2h", "--comment", "deploying payments")
    assert result.code == 0, result.err
    silence = Silence.objects.get()
    first, muted = result.out.splitlines()
    ends = silence.ends_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert first in (f"silence {silence.pk} created: active until {ends} UTC (in {left}), "
                     f"matching 1 alert:" for left in ("1h59m", "2h"))
    assert muted == "  payments errors on checkout -> payments (Firing)"
    assert silence.matchers == [{"name": "alertname", "op": "=", "value": "payments errors"},
                                {"name": "target", "op": "=~", "value": "pay.*"}]

    alerts = meshctl("alerts").out.splitlines()
    assert cells(alerts[1])[3] == "Firing (silenced)"
    assert alerts[-1] == "1 alert: 1 Firing (1 silenced); evaluated every 10 s"
    header, row = meshctl("silence").out.splitlines()
    assert header.split() == ["ID", "STATE", "MATCHERS", "STARTS", "ENDS", "MATCHES", "BY",
                              "COMMENT"]
    listed = cells(row)
    assert listed[:3] == [str(silence.pk), "active", "alertname=payments errors, target=~pay.*"]
    assert listed[3].endswith(" ago") and listed[4] in ("in 1h59m", "in 2h")
    assert listed[5:] == ["1 (1 firing)", "olivia", "deploying payments"]
    assert meshctl("silence", "-o", "json").json() == meshctl.api("/alerts/silences")

    expired = meshctl("silence", "expire", str(silence.pk))
    assert (expired.code, expired.out) == (0, f"silence {silence.pk} expired: alertname=payments "
                                              f"errors, target=~pay.* is notified again\n")
    assert meshctl("silence").out == ("no active or pending silence\nand 1 expired (meshctl "
                                      "silence --state expired lists it)\n")
    old = meshctl("silence", "--state", "expired").out.splitlines()
    assert cells(old[1])[:2] == [str(silence.pk), "expired"] and cells(old[1])[5] == "-"
    assert cells(meshctl("alerts").out.splitlines()[1])[3] == "Firing"
    assert meshctl("silence", "expire", "99999").err == "meshctl: there is no silence 99999\n"
    assert rule["id"] == AlertRule.objects.get().pk


def test_a_silence_may_start_later_and_end_at_a_time(meshctl: Meshctl) -> None:
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    until = start + timedelta(minutes=30)
    result = meshctl("silence", "create", "--matcher", "team=web", "--start",
                     start.isoformat(), "--until", until.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert result.code == 0, result.err
    assert re.fullmatch(rf"silence \d+ created: pending from {start:%Y-%m-%d %H:%M:%S} UTC \(in "
                        rf"(59m\d+s|1h)\) until {until:%Y-%m-%d %H:%M:%S} UTC \(in 1h(29m|30m)\), "
                        r"matching 0 alerts now\n", result.out), result.out
    silence = Silence.objects.get()
    assert (silence.starts_at, silence.ends_at) == (start, until)
    local = meshctl("silence", "create", "--matcher", "team=web", "--until",
                    (datetime.now() + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M"), "-o", "json")
    assert local.code == 0, local.err  # no offset: this machine's time
    ends = datetime.fromisoformat(local.json()["ends_at"].replace("Z", "+00:00"))
    assert timedelta(hours=2, minutes=58) < ends - datetime.now(UTC) <= timedelta(hours=3)
    pending = meshctl("silence", "--state", "pending", "-o", "json").json()["silences"]
    assert [s["id"] for s in pending] == [silence.pk]


def test_a_silence_the_server_refuses_names_the_flag(meshctl: Meshctl) -> None:
    def refused(*argv: str) -> str:
        result = meshctl("silence", "create", *argv)
        assert (result.code, result.out) == (1, ""), result.err
        return result.err

    assert refused("--matcher", "team=pay", "--matcher", "service=~(", "--duration",
                   "1h").startswith("meshctl: the 2nd --matcher: not a regular expression: ")
    assert refused("--matcher", "team!=pay", "--duration", "1h") == (
        "meshctl: the 1st --matcher: these matchers match an alert with no labels, so they "
        "would silence every alert; match a label's value; nothing was saved\n")
    assert refused("--matcher", "team=pay", "--until", "2020-01-01T00:00Z") == (
        "meshctl: --until: a silence ends after it starts, and in the future; nothing was "
        "saved\n")
    assert not Silence.objects.exists()
    for argv, said in ((["--matcher", "team=pay"], "--duration 2h, or --until TIME"),
                       (["--matcher", "team=pay", "--duration", "1h", "--until", "2030-01-01"],
                        "(one of them)"),
                       (["--duration", "1h"], "the following arguments are required: --matcher"),
                       (["--matcher", "team", "--duration", "1h"], "give NAME=VALUE"),
                       (["--matcher", "a=b", "--until", "soon"], "--until 'soon': give an ISO"),
                       (["--matcher", "a=b", "--duration", "1h", "--start", "now"],
                        "--start 'now': give an ISO")):
        result = meshctl("silence", "create", *argv, MESHUI_URL=DEAD)
        assert result.code == 2 and said in result.err, (argv, result.err)
    viewer = meshctl("silence", "create", "--matcher", "a=b", "--duration", "1h",
                     MESHUI_TOKEN=token_for("vic", Role.VIEWER))
    assert viewer.code == 1 and "silencing alerts needs the operator role" in viewer.err


def test_notifications_show_the_messages_made_and_their_delivery(
    meshctl: Meshctl, redis_client: redis.Redis, receiver: HttpReceiver  # noqa: F811
) -> None:
    assert meshctl("notifications").out == "no notification yet\n"
    point = made(meshctl, "contact-points", "create", "on-call", "--kind", "webhook", "--url",
                 receiver.url, "--group-wait", "0")
    _, at = firing_payments(meshctl, redis_client, "--contact-point", "on-call")
    report = dispatch.run(at + 2.0, lambda ids: None)
    [notification] = report.created
    assert delivery.deliver(notification, at + 2.0) is not None
    assert receiver.bodies()[0]["status"] == "firing"
    header, row = meshctl("notifications").out.splitlines()
    assert header.split() == ["ID", "CONTACT", "POINT", "GROUP", "STATUS", "ALERTS", "STATE",
                              "ATTEMPTS", "CREATED", "ERROR"]
    assert cells(row)[:7] == [str(notification), "on-call", "alertname=payments errors",
                              "firing", "1", "sent", "1"]
    assert cells(row)[-1] == "-"
    assert meshctl("notifications", "--contact-point", "on-call", "-o", "json").json() == (
        meshctl.api(f"/alerts/notifications?contact_point={point['id']}&limit=20"))
    attempts = meshctl("contact-points", "attempts", "on-call").out.splitlines()
    assert cells(attempts[1])[1:4] == ["ok", "firing", "200"]


def test_what_a_receiver_or_a_name_holds_cannot_drive_the_terminal(
    meshctl: Meshctl, receiver: HttpReceiver
) -> None:
    hostile = "evil\x1b]0;pwned\x07\x1b[2J\r\u202e"
    made(meshctl, "contact-points", "create", hostile, "--kind", "webhook", "--url", receiver.url)
    receiver.answer((400, hostile))  # a receiver answers what it likes; it ends in the reason
    failed = meshctl("contact-points", "test", hostile)
    assert failed.code == 1
    made(meshctl, "silence", "create", "--matcher", f"team={hostile[:4]}", "--duration", "1h",
         "--comment", hostile)
    for argv in (["contact-points"], ["contact-points", "attempts", hostile], ["silence"],
                 ["contact-points", "-o", "json"], ["silence", "-o", "json"]):
        result = meshctl(*argv)
        assert result.code == 0, (argv, result.err)
        assert not any(c in result.out for c in "\x1b\x07\r\u202e"), argv
    assert not any(c in failed.err for c in "\x1b\x07\r\u202e")
    name, reason = meshctl("contact-points").out.splitlines()[-1].split(": failing since ")
    assert name == "evil\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\u202e"
    assert re.fullmatch(r"\d+s ago: HTTP 400: evil\\x1b\]0;pwned\\x07\\x1b\[2J.*", reason), reason
