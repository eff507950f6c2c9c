"""The alert pages through Django's test client: who reads, who edits, the editor's prefill
from an "Alert on this" link, and hostile names shown as text."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client

from meshui.alerts import pages
from meshui.alerts.metrics import METRICS
from meshui.alerts.states import State
from tests.meshui.alerts.traffic import make_rule

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert(1)</script>"


def json_script(page: str, element_id: str) -> Any:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>',
                      page, re.S)
    assert match, element_id
    return json.loads(match.group(1))


def pages_of(rule_id: int) -> list[str]:
    return ["/alerts", "/alerts/rules/new", f"/alerts/rules/{rule_id}",
            f"/alerts/rules/{rule_id}/edit"]


def test_every_alert_page_answers_an_operator_with_its_controls(operator: Client) -> None:
    rule = make_rule()
    for path in pages_of(rule.pk):
        response = operator.get(path)
        assert response.status_code == 200, path
        page = response.content.decode()
        assert "Read-only." not in page, path
        assert 'class="active">Alerts</a>' in page or 'active">Alerts' in page
    listing = operator.get("/alerts").content.decode()
    assert re.search(r'<a class="button small primary" id="new-rule" href="/alerts/rules/new">', listing)
    rule_page = operator.get(f"/alerts/rules/{rule.pk}").content.decode()
    assert f'href="/alerts/rules/{rule.pk}/edit"' in rule_page
    editor = operator.get(f"/alerts/rules/{rule.pk}/edit").content.decode()
    assert not re.search(r'id="save-rule"[^>]*disabled', editor)
    assert not re.search(r'id="rule-form"[^>]*disabled', editor)


def test_a_viewer_reads_every_alert_page_without_edit_controls(viewer: Client) -> None:
    rule = make_rule()
    for path in pages_of(rule.pk):
        response = viewer.get(path)
        assert response.status_code == 200, path
        page = response.content.decode()
        assert "Read-only." in page, path
        assert "Editing alert rules needs the operator role; victor is a viewer" in page, path
        assert json_script(page, "edit-access")["allowed"] is False
    listing = viewer.get("/alerts").content.decode()
    assert re.search(r'<button type="button" class="button small" id="new-rule" disabled', listing)
    assert 'href="/alerts/rules/new"' not in listing
    rule_page = viewer.get(f"/alerts/rules/{rule.pk}").content.decode()
    assert f'href="/alerts/rules/{rule.pk}/edit"' not in rule_page
    assert re.search(r'id="delete-rule" disabled', rule_page)
    editor = viewer.get("/alerts/rules/new").content.decode()
    assert re.search(r'<fieldset class="editors alert-form" id="rule-form" disabled', editor)
    assert re.search(r'id="save-rule" disabled', editor)


def test_an_anonymous_reader_is_sent_to_log_in(meshui_settings: Any) -> None:
    rule = make_rule()
    for path in pages_of(rule.pk):
        response = Client().get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/accounts/login/?next=")


def test_with_public_read_an_anonymous_reader_sees_them_read_only(meshui_settings: Any) -> None:
    meshui_settings.MESHUI_PUBLIC_READ = True
    page = Client().get("/alerts").content.decode()
    assert "Log in as an operator to edit alert rules." in page


def test_without_rules_the_page_says_so_and_offers_an_operator_a_new_rule(
        operator: Client, viewer: Client) -> None:
    page = operator.get("/alerts").content.decode()
    assert "No alert rules yet" in page
    assert re.search(r'<section class="card empty-state" id="no-rules">', page)
    assert re.search(r'<div id="alerts-body" hidden>', page)
    assert 'id="empty-new-rule"' in page
    assert 'id="empty-new-rule"' not in viewer.get("/alerts").content.decode()
    make_rule()
    page = operator.get("/alerts").content.decode()
    assert re.search(r'id="no-rules" hidden', page)


def test_the_filters_come_back_from_the_query_string(operator: Client) -> None:
    make_rule()
    page = operator.get("/alerts?state=Firing&severity=critical&label=team%3Dpay&rule=3").content.decode()
    assert '<option value="Firing" selected>' in page
    assert '<option value="critical" selected>' in page
    assert 'value="team=pay"' in page
    assert json_script(page, "alerts-page")["filters"] == {
        "state": "Firing", "severity": "critical", "label": "team=pay", "rule": "3"}


def test_a_missing_rule_is_a_404_page_that_says_so(operator: Client) -> None:
    for path in ("/alerts/rules/999", "/alerts/rules/999/edit"):
        response = operator.get(path)
        assert response.status_code == 404
        assert "There is no alert rule 999" in response.content.decode()


def test_names_from_users_and_the_network_are_text_on_every_page(operator: Client) -> None:
    rule = make_rule(HOSTILE, target={"service": HOSTILE}, labels={"team": HOSTILE})
    for path in pages_of(rule.pk) + [f"/alerts/rules/new?service={HOSTILE}",
                                     f"/alerts?label=x%3D{HOSTILE}"]:
        page = operator.get(path).content.decode()
        assert HOSTILE not in page, path
        assert "<script>alert" not in page, path
    rule_page = operator.get(f"/alerts/rules/{rule.pk}").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rule_page
    editor = operator.get(f"/alerts/rules/new?service={HOSTILE}").content.decode()
    assert json_script(editor, "rule-editor")["rule"]["target"] == {"service": HOSTILE}


def test_the_rule_page_says_what_the_rule_does_in_the_form_s_units(operator: Client) -> None:
    rule = make_rule(fire=0.05, recover=0.02, for_s=60, keep_firing_s=30, window_s=60)
    page = operator.get(f"/alerts/rules/{rule.pk}").content.decode()
    assert "checkout -&gt; payments" in page
    assert ("error rate over 60 s above 5 %, for 1 min; recovers below 2 %; keeps firing 30 s"
            in page)
    assert json_script(page, "rule-page")["rule"]["id"] == rule.pk


def test_the_editor_of_a_rule_holds_the_rule_and_its_target_kind(operator: Client) -> None:
    rule = make_rule(target={"source": "*", "target": "payments", "version": "v2"})
    page = operator.get(f"/alerts/rules/{rule.pk}/edit").content.decode()
    editing = json_script(page, "rule-editor")
    assert editing["id"] == rule.pk
    assert editing["rule"]["kind"] == "edge_version"
    assert editing["rule"]["target"] == {"source": "*", "target": "payments", "version": "v2"}


@pytest.mark.parametrize(("query", "kind", "target", "name"), [
    ({"service": "payments"}, "service", {"service": "payments"}, "payments error rate"),
    ({"source": "checkout", "target": "payments"}, "edge",
     {"source": "checkout", "target": "payments"}, "checkout -> payments error rate"),
    ({"service": "payments", "version": "v2"}, "version",
     {"service": "payments", "version": "v2"}, "payments v2 error rate"),
    ({"source": "checkout", "target": "payments", "version": "v2"}, "edge_version",
     {"source": "checkout", "target": "payments", "version": "v2"},
     "checkout -> payments (v2) error rate"),
    ({"instance": "payments-1"}, "instance", {"instance": "payments-1"},
     "instance payments-1 error rate"),
    ({"instance": "payments-1", "service": "payments"}, "instance",
     {"service": "payments", "instance": "payments-1"}, "instance payments-1 of payments error rate"),
])
def test_an_alert_on_this_link_prefills_the_target_and_an_error_rate_rule(
        query: dict[str, str], kind: str, target: dict[str, str], name: str) -> None:
    rule = pages.prefill(query)
    assert (rule["kind"], rule["target"], rule["name"]) == (kind, target, name)
    assert (rule["metric"], rule["op"], rule["fire"], rule["recover"]) == ("error_rate", ">", 0.05, 0.02)
    assert (rule["window_s"], rule["for_s"], rule["keep_firing_s"], rule["severity"]) == (
        60, 60, 0, "warning")


def test_a_prefill_without_a_target_shape_leaves_the_target_to_fill_in() -> None:
    assert pages.prefill({})["target"] == {"service": ""}
    assert pages.prefill({"version": "v2"})["kind"] == "service"
    assert pages.prefill({"service": "a", "metric": "p99_ms"})["fire"] == 1000.0
    assert pages.prefill({"service": "a", "metric": "nonsense"})["metric"] == "error_rate"


def test_the_vocabulary_is_the_api_s_own_lists() -> None:
    vocabulary = pages.vocabulary()
    assert [m["name"] for m in vocabulary["metrics"]] == list(METRICS)
    assert {s["name"] for s in vocabulary["states"]} == {state.value for state in State}
    error_rate = next(m for m in vocabulary["metrics"] if m["name"] == "error_rate")
    assert (error_rate["shown_unit"], error_rate["scale"], error_rate["high"]) == ("%", 100.0, 1.0)
    firing = [s["name"] for s in vocabulary["states"] if s["firing"]]
    assert sorted(firing) == ["Firing", "Recovering"]
    assert pages.shown_value("error_rate", 0.05) == "5 %"
    assert pages.shown_value("p99_ms", 250.0) == "250 ms"


def test_the_graph_page_offers_alert_on_this_to_operators_only(
        operator: Client, viewer: Client) -> None:
    for client, allowed in ((operator, True), (viewer, False)):
        page = client.get("/").content.decode()
        assert json_script(page, "graph-page")["alerts"]["can_edit"] is allowed
        assert ('id="edge-detail-alert"' in page) is allowed


def test_the_service_page_offers_alert_on_this_to_operators_only(
        operator: Client, viewer: Client) -> None:
    from meshui.registry.models import Service

    Service.objects.create(name="payments")
    page = operator.get("/services/payments").content.decode()
    assert 'id="alert-on-this" href="/alerts/rules/new?service=payments"' in page
    assert 'id="alert-on-this"' not in viewer.get("/services/payments").content.decode()


NOTIFY_PAGES = ["/alerts/silences", "/alerts/contact-points", "/alerts/contact-points/new"]


def test_the_silences_and_contact_points_pages_answer_an_operator(operator: Client) -> None:
    for path in NOTIFY_PAGES:
        response = operator.get(path)
        assert response.status_code == 200, path
        page = response.content.decode()
        assert "Read-only." not in page, path
        if "/new" not in path:  # the lists carry the sub-navigation
            assert 'class="current" aria-current="page"' in page, path
    listing = operator.get("/alerts/contact-points").content.decode()
    assert 'href="/alerts/contact-points/new"' in listing
    assert "No contact points yet" in listing


def test_a_viewer_reads_them_with_the_role_they_need_said(viewer: Client) -> None:
    silences = viewer.get("/alerts/silences").content.decode()
    assert "Silencing alerts needs the operator role; victor is a viewer" in silences
    assert re.search(r'id="new-silence" disabled', silences)
    points = viewer.get("/alerts/contact-points").content.decode()
    assert "Editing contact points needs the operator role; victor is a viewer" in points
    assert 'href="/alerts/contact-points/new"' not in points
    editor = viewer.get("/alerts/contact-points/new").content.decode()
    assert re.search(r'id="save-point" disabled', editor)


def test_an_anonymous_reader_is_sent_to_log_in_from_them(meshui_settings: Any) -> None:
    for path in NOTIFY_PAGES:
        assert Client().get(path).status_code == 302, path


def test_silence_this_prefills_matchers_from_the_query(operator: Client) -> None:
    page = operator.get("/alerts/silences?matcher=alertname%3Dpayments%20errors"
                        "&matcher=source%3Dcheckout&matcher=team%3D~pay.*&matcher=nonsense"
                        f"&comment={HOSTILE}").content.decode()
    prefill = json_script(page, "silences-page")["prefill"]
    assert prefill["matchers"] == [{"name": "alertname", "op": "=", "value": "payments errors"},
                                   {"name": "source", "op": "=", "value": "checkout"},
                                   {"name": "team", "op": "=~", "value": "pay.*"}]
    assert prefill["open"] is True and prefill["comment"] == HOSTILE
    assert HOSTILE not in page
    closed = json_script(operator.get("/alerts/silences").content.decode(), "silences-page")
    assert closed["prefill"]["open"] is False


def test_a_contact_point_s_editor_holds_it_and_a_missing_one_is_a_404(operator: Client) -> None:
    from meshui.alerts.models import ContactPoint

    point = ContactPoint.objects.create(name=HOSTILE, kind="webhook",
                                        config={"url": "http://127.0.0.1:9/hook"})
    page = operator.get(f"/alerts/contact-points/{point.pk}/edit").content.decode()
    assert json_script(page, "point-editor")["point"]["url"] == "http://127.0.0.1:9/hook"
    assert HOSTILE not in page
    assert "&lt;script&gt;" in page
    response = operator.get("/alerts/contact-points/999/edit")
    assert response.status_code == 404
    assert "There is no contact point 999" in response.content.decode()


def test_the_notify_vocabulary_is_the_api_s_own() -> None:
    from meshui.alerts import notify_pages
    from meshui.alerts.models import KINDS
    from meshui.alerts.notify.matchers import OPS

    vocabulary = notify_pages.vocabulary()
    assert [k["kind"] for k in vocabulary["kinds"]] == list(KINDS)
    assert [o["op"] for o in vocabulary["ops"]] == list(OPS)
    assert vocabulary["days"] == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert vocabulary["point_defaults"]["group_by"] == ["alertname"]
