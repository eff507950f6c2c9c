"""The contact point, silence and notification endpoints: fields, validation naming the
field, roles, the audit log, the test button against a real receiver."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.test import Client
from django.utils import timezone

from meshui.alerts.models import AlertRule, ContactPoint, Silence
from meshui.policy.models import AuditEntry
from tests.meshui.alerts.receivers import HttpReceiver, http_receiver
from tests.meshui.alerts.test_api import evaluate_firing, post, put
from tests.meshui.alerts.traffic import make_rule

pytestmark = pytest.mark.django_db

POINTS = "/api/v1/alerts/contact-points"
SILENCES = "/api/v1/alerts/silences"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from http_receiver()


def made(client: Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = post(client, path, body)
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def test_a_contact_point_has_the_api_fields_defaults_and_is_audited(
        operator: Client, viewer: Client) -> None:
    body = made(operator, POINTS, {"name": "on-call", "kind": "webhook",
                                   "url": "https://hooks.example.com/alerts"})
    assert body | {"id": 0, "created_at": "-", "updated_at": "-"} == {
        "id": 0, "name": "on-call", "kind": "webhook", "url": "https://hooks.example.com/alerts",
        "send_resolved": True, "group_by": ["alertname"], "group_wait_s": 30,
        "group_interval_s": 300, "repeat_interval_s": 14400, "mute_times": [],
        "status": "untested", "failing_reason": "", "failing_since": None,
        "last_attempt": None, "rules": [], "created_at": "-", "updated_at": "-"}
    rule = make_rule()
    rule.contact_points.add(body["id"])
    listed = viewer.get(POINTS).json()["contact_points"]
    assert [(p["name"], p["rules"]) for p in listed] == [("on-call", [rule.pk])]
    mail = made(operator, POINTS, {"name": "mail", "kind": "email",
                                   "address": "a@example.com,b@example.com",
                                   "mute_times": [{"days": ["sat", "sun"], "from": "00:00",
                                                   "to": "24:00", "timezone": "Europe/Paris"}]})
    assert mail["address"] == "a@example.com, b@example.com"
    assert mail["mute_times"] == [{"days": ["sat", "sun"], "from": "00:00", "to": "24:00",
                                   "timezone": "Europe/Paris"}]
    changed = put(operator, f"{POINTS}/{body['id']}", {"name": "on-call", "kind": "slack",
                                                       "url": "https://hooks.slack.com/x"})
    assert changed.status_code == 200 and changed.json()["kind"] == "slack"
    assert operator.delete(f"{POINTS}/{mail['id']}").status_code == 200
    assert [e.action for e in AuditEntry.objects.order_by("at", "pk")] == [
        "contact_point_created", "contact_point_created", "contact_point_updated",
        "contact_point_deleted"]
    assert AuditEntry.objects.filter(action="contact_point_updated").get().detail == (
        f"contact point {body['id']} 'on-call': changed kind, config")


@pytest.mark.parametrize("body, parameter, words", [
    ({"kind": "pager"}, "contact_point.kind", "Input should be"),
    ({"url": "ftp://x"}, "contact_point.url", "http:// or https://"),
    ({"url": None}, "contact_point.url", "needs a url"),
    ({"address": "a@b.example"}, "contact_point.address", "has no address"),
    ({"kind": "email", "url": None, "address": "not-an-address"}, "contact_point.address",
     "is not an email address"),
    ({"group_by": ["1bad"]}, "contact_point.group_by", "label names"),
    ({"group_wait_s": -1}, "contact_point.group_wait_s", "from 0 to 3600"),
    ({"repeat_interval_s": 60, "group_interval_s": 300}, "contact_point.repeat_interval_s",
     "at least group_interval_s"),
    ({"mute_times": [{"from": "9", "to": "10:00"}]}, "contact_point.mute_times[0].from", "HH:MM"),
    ({"colour": "red"}, "contact_point.colour", "Extra inputs"),
])
def test_an_invalid_contact_point_is_a_400_naming_the_field(
        operator: Client, body: dict[str, Any], parameter: str, words: str) -> None:
    response = post(operator, POINTS, {"name": "x", "kind": "webhook",
                                       "url": "http://h.example/x"} | body)
    assert response.status_code == 400, response.content
    assert response.json()["parameter"] == parameter
    assert words in response.json()["detail"]
    assert not ContactPoint.objects.exists()


def test_viewers_read_contact_points_and_silences_but_may_not_write(
        operator: Client, viewer: Client) -> None:
    point = made(operator, POINTS, {"name": "on-call", "kind": "webhook",
                                    "url": "http://h.example/x"})
    silence = made(operator, SILENCES, {"matchers": [{"name": "team", "value": "pay"}],
                                        "duration_s": 600})
    assert viewer.get(POINTS).status_code == viewer.get(SILENCES).status_code == 200
    assert viewer.get(f"{POINTS}/{point['id']}/attempts").status_code == 200
    assert viewer.get("/api/v1/alerts/notifications").status_code == 200
    for response in (post(viewer, POINTS, {"name": "y", "kind": "webhook",
                                           "url": "http://h.example/y"}),
                     post(viewer, f"{POINTS}/{point['id']}/test", {}),
                     viewer.delete(f"{POINTS}/{point['id']}"),
                     post(viewer, SILENCES, {"matchers": [{"name": "a", "value": "b"}],
                                             "duration_s": 60}),
                     viewer.delete(f"{SILENCES}/{silence['id']}")):
        assert response.status_code == 403, response.content
    assert Client().get(SILENCES).status_code == 401


def test_the_test_button_sends_to_the_receiver_and_reports_what_came_of_it(
        operator: Client, receiver: HttpReceiver) -> None:
    point = made(operator, POINTS, {"name": "on-call", "kind": "webhook", "url": receiver.url})
    ok = post(operator, f"{POINTS}/{point['id']}/test", {}).json()
    assert ok["ok"] and ok["status_code"] == 200 and ok["attempt"]["status"] == "test"
    [body] = receiver.bodies()
    assert body["status"] == "firing" and body["receiver"] == "on-call"
    assert body["alerts"][0]["labels"]["alertname"] == "TestAlert"
    receiver.answer((401, "bad token"))
    failed = post(operator, f"{POINTS}/{point['id']}/test", {}).json()
    assert not failed["ok"] and failed["detail"] == "HTTP 401: bad token"
    shown = operator.get(f"{POINTS}/{point['id']}").json()
    assert shown["status"] == "failing" and shown["failing_reason"] == "HTTP 401: bad token"
    assert shown["last_attempt"]["status_code"] == 401
    attempts = operator.get(f"{POINTS}/{point['id']}/attempts").json()["attempts"]
    assert [(a["ok"], a["status_code"], a["permanent"]) for a in attempts] == [
        (False, 401, True), (True, 200, False)]
    assert AuditEntry.objects.filter(action="contact_point_tested").count() == 2


def test_silences_are_made_listed_with_what_they_match_and_expired(
        operator: Client, viewer: Client, redis_client: redis.Redis) -> None:
    rule = make_rule(labels={"team": "pay"})
    evaluate_firing(redis_client, rule.pk)
    body = made(operator, SILENCES, {"matchers": [{"name": "team", "op": "=", "value": "pay"},
                                                  {"name": "target", "op": "=~",
                                                   "value": "pay.*"}],
                                     "duration_s": 3600, "comment": "deploying payments"})
    assert body["state"] == "active" and body["created_by"] == "olivia"
    assert body["comment"] == "deploying payments"
    assert body["matching"] == [{"rule": rule.pk, "name": "payments errors", "state": "Firing",
                                 "target": {"source": "checkout", "target": "payments"}}]
    [alert] = viewer.get("/api/v1/alerts").json()["alerts"]
    assert alert["silenced"] is True and alert["state"] == "Firing"
    later = (timezone.now() + timedelta(hours=1)).isoformat()
    pending = made(operator, SILENCES, {"matchers": [{"name": "team", "value": "web"}],
                                        "starts_at": later, "duration_s": 60})
    assert pending["state"] == "pending"
    assert [s["id"] for s in viewer.get(f"{SILENCES}?state=pending").json()["silences"]] == [
        pending["id"]]
    expired = operator.delete(f"{SILENCES}/{body['id']}")
    assert expired.status_code == 200 and expired.json()["state"] == "expired"
    assert operator.delete(f"{SILENCES}?id={pending['id']}").json()["state"] == "expired"
    assert viewer.get("/api/v1/alerts").json()["alerts"][0]["silenced"] is False
    assert [s["state"] for s in viewer.get(SILENCES).json()["silences"]] == ["expired"] * 2
    assert [e.action for e in AuditEntry.objects.order_by("at", "pk")] == [
        "silence_created", "silence_created", "silence_expired", "silence_expired"]
    assert operator.delete(f"{SILENCES}/999").status_code == 404


@pytest.mark.parametrize("body, parameter, words", [
    ({"matchers": []}, "silence.matchers", "at least 1"),
    ({"matchers": [{"name": "a", "op": "=~", "value": "("}]}, "silence.matchers[0].value",
     "regular expression"),
    ({"matchers": [{"name": "a", "op": "!=", "value": "b"}]}, "silence.matchers[0]",
     "silence every alert"),
    ({"ends_at": "2020-01-01T00:00:00Z", "duration_s": None}, "silence.ends_at", "in the future"),
    ({"duration_s": None}, "silence.ends_at", "give ends_at or duration_s"),
    ({"starts_at": "tomorrow"}, "silence.starts_at", "ISO 8601"),
])
def test_an_invalid_silence_is_a_400_naming_the_field(
        operator: Client, body: dict[str, Any], parameter: str, words: str) -> None:
    response = post(operator, SILENCES, {"matchers": [{"name": "team", "value": "pay"}],
                                         "duration_s": 60} | body)
    assert response.status_code == 400, response.content
    assert response.json()["parameter"] == parameter
    assert words in response.json()["detail"]
    assert not Silence.objects.exists()


def test_deleting_a_contact_point_leaves_its_rules_notifying_the_others(
        operator: Client) -> None:
    first = made(operator, POINTS, {"name": "a", "kind": "webhook", "url": "http://h.example/a"})
    second = made(operator, POINTS, {"name": "b", "kind": "webhook", "url": "http://h.example/b"})
    rule = make_rule()
    rule.contact_points.add(first["id"], second["id"])
    operator.delete(f"{POINTS}/{first['id']}")
    assert list(AlertRule.objects.get().contact_points.values_list("pk", flat=True)) == [
        second["id"]]


def test_readers_who_may_not_edit_see_a_webhook_url_without_its_secret_parts(
        operator: Client, viewer: Client) -> None:
    point = made(operator, POINTS, {"name": "chat", "kind": "slack",
                                    "url": "https://hooks.slack.com/services/T1/B2/secretkey"})
    assert operator.get(f"{POINTS}/{point['id']}").json()["url"].endswith("/secretkey")
    shown = viewer.get(f"{POINTS}/{point['id']}").json()["url"]
    assert shown == "https://hooks.slack.com/…"
    assert viewer.get(POINTS).json()["contact_points"][0]["url"] == shown


def test_a_silence_lists_a_rule_not_evaluated_yet_among_what_it_matches(
        operator: Client) -> None:
    rule = make_rule(labels={"team": "pay"})
    body = made(operator, SILENCES, {"matchers": [{"name": "team", "value": "pay"}],
                                     "duration_s": 60})
    assert body["matching"] == [{"rule": rule.pk, "name": "payments errors", "state": "Normal",
                                 "target": {"source": "checkout", "target": "payments"}}]
