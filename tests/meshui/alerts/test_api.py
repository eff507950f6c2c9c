"""The alerts API: rules (roles, CSRF, tokens, validation, audit), states, history, preview."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from django.test import Client

from meshui.accounts.models import ApiToken
from meshui.alerts.evaluator import Evaluator
from meshui.alerts.models import AlertRule, AlertState, AlertTransition, ContactPoint
from meshui.alerts.states import State
from meshui.policy.models import AuditEntry
from tests.clock import FakeClock
from tests.meshui.alerts.traffic import BASE, Traffic
from tests.meshui.users import make_operator

pytestmark = pytest.mark.django_db

RULES = "/api/v1/alerts/rules"
RULE = {"name": "payments errors", "target": {"source": "checkout", "target": "payments"},
        "metric": "error_rate", "window_s": 60, "op": ">", "fire": 0.2, "recover": 0.05,
        "for_s": 10, "keep_firing_s": 0, "severity": "critical", "labels": {"team": "pay"},
        "contact_points": []}


def post(client: Client, path: str, body: dict[str, Any], **headers: str) -> Any:
    return client.post(path, body, content_type="application/json", headers=headers)


def put(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.put(path, body, content_type="application/json")


def created(client: Client, **changes: Any) -> dict[str, Any]:
    response = post(client, RULES, RULE | changes)
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def test_an_operator_creates_a_rule_with_exactly_the_api_fields_and_it_is_audited(
        operator: Client) -> None:
    point = ContactPoint.objects.create(name="on-call", kind="webhook")
    body = created(operator, contact_points=[point.pk])
    assert {key: body[key] for key in RULE} == RULE | {"contact_points": [point.pk]}
    assert set(body) == set(RULE) | {"id", "created_at", "updated_at"}
    assert operator.get(f"{RULES}/{body['id']}").json() == body
    assert operator.get(RULES).json() == {"rules": [body]}
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.username, entry.method, entry.path) == (
        "alert_rule_created", "olivia", "POST", RULES)
    assert entry.detail == (f"rule {body['id']} 'payments errors': error_rate of checkout -> "
                            "payments over 60 s > 0.2 (recovers < 0.05) for 10 s, critical")


def test_viewers_read_and_may_not_write_and_anonymous_writes_are_401(
        operator: Client, viewer: Client) -> None:
    rule = created(operator)
    assert viewer.get(RULES).status_code == 200
    assert viewer.get(f"{RULES}/{rule['id']}/history").status_code == 200
    assert viewer.get("/api/v1/alerts").status_code == 200
    for response in (post(viewer, RULES, RULE | {"name": "mine"}),
                     put(viewer, f"{RULES}/{rule['id']}", RULE),
                     viewer.delete(f"{RULES}/{rule['id']}")):
        assert response.status_code == 403, response.content
        assert response.json()["error"] == "forbidden"
        assert "editing alert rules needs the operator role" in response.json()["detail"]
    assert post(Client(), RULES, RULE).status_code == 401
    assert Client().get(RULES).status_code == 401
    assert AlertRule.objects.count() == 1
    # Refusals of one user on one path within a minute are one entry with a count.
    refused = AuditEntry.objects.filter(action="refused").values_list("username", "path", "count")
    assert sorted(refused) == [("", RULES, 1), ("victor", RULES, 1),
                               ("victor", f"{RULES}/{rule['id']}", 2)]


def test_a_session_write_needs_the_csrf_token_and_a_token_write_does_not(
        meshui_settings: Any) -> None:
    user = make_operator("olivia")
    session = Client(enforce_csrf_checks=True)
    session.force_login(user)
    refused = post(session, RULES, RULE)
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
    _, token = ApiToken.issue(user, "cli")
    cli = Client(enforce_csrf_checks=True)
    assert post(cli, RULES, RULE, Authorization=f"Bearer {token}").status_code == 201


@pytest.mark.parametrize("changes, parameter, words", [
    ({"recover": 0.3}, "rule.recover", "must be at most fire (0.2) when op is '>'"),
    ({"fire": 5.0, "recover": 2.0}, "rule.fire", "0.05 is 5 %"),
    ({"metric": "latency"}, "rule.metric", "Input should be"),
    ({"window_s": 5}, "rule.window_s", "greater than or equal to 10"),
    ({"window_s": 3601}, "rule.window_s", "less than or equal to 3600"),
    ({"op": ">="}, "rule.op", "Input should be"),
    ({"op": None}, "rule.op", "op is required"),
    ({"fire": None}, "rule.fire", "fire is required"),
    ({"for_s": -1}, "rule.for_s", "greater than or equal to 0"),
    ({"severity": "page"}, "rule.severity", "Input should be"),
    ({"target": {"source": "checkout"}}, "rule.target", "is not a target"),
    ({"target": {"service": "a", "colour": "red"}}, "rule.target.colour", "Extra inputs"),
    ({"target": {"service": ""}}, "rule.target.service", "at least 1 character"),
    ({"target": {"service": "p", "version": "v2"}, "metric": "timeouts"}, "rule.metric",
     "a version records no policy events"),
    ({"labels": {"severity": "x"}}, "rule.labels.severity", "set from the rule itself"),
    ({"labels": {"team": 3}}, "rule.labels.team", "valid string"),
    ({"contact_points": [9]}, "rule.contact_points", "there is no contact point 9"),
    ({"name": ""}, "rule.name", "at least 1 character"),
])
def test_an_invalid_rule_is_a_400_naming_the_field_and_saves_nothing(
        operator: Client, changes: dict[str, Any], parameter: str, words: str) -> None:
    response = post(operator, RULES, RULE | changes)
    assert response.status_code == 400, response.content
    body = response.json()
    assert (body["error"], body["parameter"]) == ("invalid_parameter", parameter)
    assert words in body["detail"]
    assert not AlertRule.objects.exists()


def test_a_nan_threshold_and_a_duplicate_name_are_refused(operator: Client) -> None:
    nan = operator.post(RULES, '{"name": "n", "target": {"service": "a"}, "metric": "rps", '
                        '"window_s": 60, "op": ">", "fire": NaN}', content_type="application/json")
    assert nan.status_code == 400 and nan.json()["parameter"] == "rule.fire"
    rule = created(operator)
    again = post(operator, RULES, RULE)
    assert again.status_code == 400 and again.json()["parameter"] == "rule.name"
    assert f"exists already (id {rule['id']})" in again.json()["detail"]


def evaluate_firing(redis_client: redis.Redis, rule_id: int) -> None:
    """One cycle in which checkout -> payments fails half its calls."""
    Traffic(redis_client).calls("checkout", "payments", range(BASE - 60, BASE), 10, 0.5).write()
    AlertRule.objects.filter(pk=rule_id).update(for_s=0)
    assert Evaluator(redis_client, clock=FakeClock(BASE + 1.0), interval=10).run().ran


def test_the_alerts_list_every_rule_and_target_with_state_since_and_value(
        operator: Client, viewer: Client, redis_client: redis.Redis) -> None:
    firing = created(operator)
    fresh = created(operator, name="into inventory", target={"source": "*", "target": "inventory"},
                    severity="warning", labels={})
    evaluate_firing(redis_client, firing["id"])
    body = viewer.get("/api/v1/alerts").json()
    assert body["interval_s"] == 10
    by_name = {alert["name"]: alert for alert in body["alerts"]}
    assert by_name["payments errors"] | {"since": "-", "last_evaluated": "-"} == {
        "rule": firing["id"], "name": "payments errors", "severity": "critical",
        "labels": {"team": "pay"}, "metric": "error_rate",
        "target": {"source": "checkout", "target": "payments"}, "state": "Firing",
        "since": "-", "value": 0.5, "detail": "0.5 > 0.2", "last_evaluated": "-",
        "silenced": False}
    # Stepped at the cycle's start (the run was 1 s into it).
    assert by_name["payments errors"]["since"] == "2027-01-15T08:00:00Z"
    # Nothing calls inventory: the pattern's own row, NoData.
    assert (by_name["into inventory"]["state"], by_name["into inventory"]["target"]) == (
        "NoData", {"source": "*", "target": "inventory"})
    assert [a["name"] for a in viewer.get("/api/v1/alerts", {"state": "Firing"}).json()["alerts"]
            ] == ["payments errors"]
    assert [a["rule"] for a in viewer.get("/api/v1/alerts", {"severity": "warning"}).json()[
        "alerts"]] == [fresh["id"]]
    assert [a["rule"] for a in viewer.get("/api/v1/alerts", {"label": "team=pay"}).json()[
        "alerts"]] == [firing["id"]]
    bad = viewer.get("/api/v1/alerts", {"label": "team"})
    assert bad.status_code == 400 and bad.json()["parameter"] == "label"
    assert viewer.get("/api/v1/alerts", {"state": "Burning"}).json()["parameter"] == "state"


def test_a_rule_not_evaluated_yet_is_listed_normal_on_its_own_target(operator: Client) -> None:
    rule = created(operator)
    (alert,) = operator.get("/api/v1/alerts").json()["alerts"]
    assert (alert["state"], alert["value"], alert["last_evaluated"], alert["since"]) == (
        "Normal", None, None, rule["updated_at"])


def test_the_history_lists_each_transition_newest_first_a_page_at_a_time(
        operator: Client, redis_client: redis.Redis) -> None:
    rule = created(operator)
    evaluate_firing(redis_client, rule["id"])
    assert Evaluator(redis_client, clock=FakeClock(BASE + 70.0), interval=10).run().ran  # no data
    body = operator.get(f"{RULES}/{rule['id']}/history").json()
    assert (body["rule"], body["count"], body["page"], body["per_page"]) == (rule["id"], 2, 1, 50)
    assert [(t["from_state"], t["to_state"], t["value"]) for t in body["transitions"]] == [
        ("Firing", "NoData", None), ("Normal", "Firing", 0.5)]
    assert body["transitions"][0]["target"] == {"source": "checkout", "target": "payments"}
    assert body["transitions"][1]["at"] == "2027-01-15T08:00:00Z"  # the cycle's start
    page = operator.get(f"{RULES}/{rule['id']}/history", {"per_page": 1, "page": 2}).json()
    assert [t["to_state"] for t in page["transitions"]] == ["Firing"]
    assert operator.get(f"{RULES}/999/history").status_code == 404


def test_an_edit_of_thresholds_keeps_the_states_and_a_new_target_resolves_them(
        operator: Client, redis_client: redis.Redis) -> None:
    rule = created(operator)
    evaluate_firing(redis_client, rule["id"])
    path = f"{RULES}/{rule['id']}"
    raised = put(operator, path, RULE | {"fire": 0.3, "recover": 0.1})
    assert raised.status_code == 200, raised.content
    assert (raised.json()["fire"], raised.json()["recover"]) == (0.3, 0.1)
    assert raised.json()["updated_at"] > rule["updated_at"]
    assert AlertState.objects.get().state == State.FIRING
    moved = put(operator, path, RULE | {"target": {"service": "payments"}})
    assert moved.status_code == 200
    assert not AlertState.objects.exists()
    resolved = AlertTransition.objects.order_by("pk").last()
    assert resolved is not None and (resolved.from_state, resolved.to_state, resolved.detail) == (
        State.FIRING, State.NORMAL, "the rule's target, metric or window changed")
    details = list(AuditEntry.objects.filter(action="alert_rule_updated").order_by("at")
                   .values_list("detail", flat=True))
    assert details[0].startswith(
        f"rule {rule['id']} 'payments errors': fire 0.2 -> 0.3, recover 0.05 -> 0.1")
    assert "target {'source': 'checkout', 'target': 'payments'} -> {'service': 'payments'}" in \
        details[1]
    assert put(operator, f"{RULES}/999", RULE).status_code == 404
    other = created(operator, name="other")
    clash = put(operator, f"{RULES}/{other['id']}", RULE)
    assert clash.status_code == 400 and clash.json()["parameter"] == "rule.name"


def test_a_deleted_rule_takes_its_states_and_history_and_is_audited(
        operator: Client, redis_client: redis.Redis) -> None:
    rule = created(operator)
    evaluate_firing(redis_client, rule["id"])
    response = operator.delete(f"{RULES}/{rule['id']}")
    assert response.status_code == 200 and response.json()["id"] == rule["id"]
    assert not (AlertRule.objects.exists() or AlertState.objects.exists()
                or AlertTransition.objects.exists())
    assert AuditEntry.objects.filter(action="alert_rule_deleted").get().detail.startswith(
        f"rule {rule['id']} 'payments errors': error_rate of checkout -> payments")
    assert operator.delete(f"{RULES}/{rule['id']}").status_code == 404
    assert operator.get(f"{RULES}/{rule['id']}").status_code == 404


def write_last_hour(redis_client: redis.Redis, now: float) -> None:
    """An hour of checkout -> payments: 10 calls a second, half failing 20 to 15 min ago."""
    traffic = Traffic(redis_client)
    at = int(now)
    traffic.calls("checkout", "payments", range(at - 3700, at - 1200), 10, 0.0)
    traffic.calls("checkout", "payments", range(at - 1200, at - 900), 10, 0.5)
    traffic.calls("checkout", "payments", range(at - 900, at + 30), 10, 0.0)
    traffic.calls("fraud", "payments", range(at - 600, at + 30), 2, 0.0)
    traffic.write()


def test_the_preview_backtests_the_rule_over_the_last_hour(
        viewer: Client, redis_client: redis.Redis) -> None:
    now = time.time()
    write_last_hour(redis_client, now)
    response = post(viewer, f"{RULES}/preview", RULE | {"for_s": 30})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["step"], body["window_s"], body["unit"], body["truncated"]) == (10, 60, "ratio", 0)
    times = body["times"]
    assert all(t % 10 == 0 for t in times) and len(times) in (360, 361)
    assert times[-1] <= time.time() < times[-1] + 20
    (line,) = body["targets"]
    assert line["target"] == {"source": "checkout", "target": "payments"}
    values = dict(zip(times, line["values"], strict=True))
    start = int(now) - 1200
    inside = [t for t in times if start + 60 <= t <= start + 300]
    assert {values[t] for t in inside} == {0.5}
    assert {values[t] for t in times if t < start - 10 or t > start + 370} == {0.0}
    # Pending once the window passes 20 %, firing 30 s later, back to Normal under 5 %.
    kinds = [period["state"] for period in line["periods"]]
    assert kinds == ["Pending", "Firing"]
    pending, firing = line["periods"]
    assert pending["end"] == firing["start"] == pending["start"] + 30
    assert start < pending["start"] <= start + 40
    assert start + 300 < firing["end"] <= start + 370
    assert [(t["from_state"], t["to_state"]) for t in line["transitions"]] == [
        ("Normal", "Pending"), ("Pending", "Firing"), ("Firing", "Normal")]
    assert set(line["states"]) == {"Normal", "Pending", "Firing"}
    assert not AlertRule.objects.exists() and not AlertState.objects.exists()


def test_a_pattern_preview_shows_each_matching_target_and_no_data_before_its_traffic(
        viewer: Client, redis_client: redis.Redis) -> None:
    now = time.time()
    write_last_hour(redis_client, now)
    body = post(viewer, f"{RULES}/preview", RULE | {
        "target": {"source": "*", "target": "payments"}, "metric": "rps", "op": "<",
        "fire": 3.0, "recover": 3.0, "for_s": 0}).json()
    assert [line["target"]["source"] for line in body["targets"]] == ["checkout", "fraud"]
    checkout, fraud = body["targets"]
    assert set(checkout["values"][-30:]) == {10.0}
    assert fraud["states"][0] == "NoData" and fraud["states"][-1] == "Firing"  # 2 calls/s < 3
    assert fraud["values"][-1] == 2.0


def test_the_preview_of_a_target_without_data_is_no_data_throughout(viewer: Client) -> None:
    body = post(viewer, f"{RULES}/preview", RULE | {"target": {"service": "ghost"}}).json()
    (line,) = body["targets"]
    assert set(line["states"]) == {"NoData"} and set(line["values"]) == {None}
    assert line["periods"] == [{"state": "NoData", "start": body["times"][0],
                                "end": body["times"][-1] + 10}]


def test_the_preview_answers_503_while_redis_is_down(outage_settings: Any, viewer: Client,
                                                    stoppable_redis: Any) -> None:
    stoppable_redis.stop()
    response = post(viewer, f"{RULES}/preview", RULE)
    assert response.status_code == 503
    assert response.json()["error"] == "data_source_unavailable"
    assert response["Retry-After"] == "2"


def test_the_preview_refuses_an_invalid_rule_as_a_write_does(viewer: Client) -> None:
    response = post(viewer, f"{RULES}/preview", RULE | {"recover": 0.5})
    assert response.status_code == 400 and response.json()["parameter"] == "rule.recover"


def test_the_alerts_endpoints_are_in_the_generated_document(viewer: Client) -> None:
    paths = viewer.get("/api/v1/openapi.json").json()["paths"]
    assert set(paths["/api/v1/alerts/rules"]) == {"get", "post"}
    assert set(paths["/api/v1/alerts/rules/{rule_id}"]) == {"get", "put", "delete"}
    assert set(paths["/api/v1/alerts/rules/preview"]) == {"post"}
    assert set(paths["/api/v1/alerts"]) == {"get"}
    assert set(paths["/api/v1/alerts/rules/{rule_id}/history"]) == {"get"}
    assert viewer.get("/api/v1/alerts/rules/preview").status_code == 405
