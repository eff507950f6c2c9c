"""The policy pages through Django's test client: who reads, who edits, unknown and hostile
service names, and what the service page hands its script (seeds, defaults, observed share)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
import redis
from django.test import Client

from collector.graphwriter import GraphWriter
from meshui.accounts.roles import Role
from meshui.policy.models import Revision, Source
from meshui.policy.service_page import observed_by_version
from meshui.registry.models import Service
from proxies.policy.schema import CircuitBreaker, OutlierDetection
from tests.meshui.users import make_operator, make_user

pytestmark = pytest.mark.django_db

PAGES = ["/services/catalog", "/policy/history", "/policy/edit", "/policy/audit"]
HOSTILE = "<img src=x onerror=alert(1)>"


def json_script(page: str, element_id: str) -> Any:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>',
                      page, re.S)
    assert match, element_id
    return json.loads(match.group(1))


def client_for(role: Role | None) -> Client:
    client = Client()
    client.force_login(make_operator() if role == Role.OPERATOR else make_user("vera", role))
    return client


@pytest.fixture
def catalog(meshui_settings: Any) -> None:
    Service.objects.create(name="catalog")


def revision(document: dict[str, Any], number: int = 1) -> Revision:
    return Revision.objects.create(number=number, parent=number - 1 or None, document=document,
                                   source=Source.API, message=f"r{number}")


@pytest.mark.parametrize("path", PAGES)
def test_every_policy_page_answers_a_viewer(catalog: None, path: str) -> None:
    response = client_for(Role.VIEWER).get(path)
    assert response.status_code == 200
    if path == "/policy/audit":  # nothing to change there
        return
    assert b"Read-only." in response.content
    assert b"needs the operator role; vera is a viewer" in response.content


@pytest.mark.parametrize("path", PAGES)
def test_an_anonymous_reader_is_sent_to_log_in_without_public_read(catalog: None,
                                                                   path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_with_public_read_an_anonymous_reader_sees_the_page_read_only(
    catalog: None, meshui_settings: Any
) -> None:
    meshui_settings.MESHUI_PUBLIC_READ = True
    page = Client().get("/services/catalog").content.decode()
    assert "Log in as an operator to change the traffic policy." in page
    assert json_script(page, "edit-access") == {
        "allowed": False, "reason": "Log in as an operator to change the traffic policy."}
    assert re.search(r'<fieldset class="editors" id="editors"\s+disabled', page)


def test_an_operator_gets_enabled_editors(catalog: None) -> None:
    page = client_for(Role.OPERATOR).get("/services/catalog").content.decode()
    assert "Read-only." not in page
    assert json_script(page, "edit-access") == {"allowed": True, "reason": ""}
    assert not re.search(r'<fieldset class="editors" id="editors"\s+disabled', page)


def test_an_unknown_service_is_a_clear_empty_state(meshui_settings: Any) -> None:
    response = client_for(Role.VIEWER).get("/services/nosuch")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="unknown-service"' in page and "No service named" in page
    assert "service-page" not in page  # no editors for a service nobody knows


@pytest.mark.parametrize("name", [HOSTILE, "Catalog", "a" * 70])
def test_a_hostile_or_invalid_service_name_is_escaped_text(meshui_settings: Any,
                                                           name: str) -> None:
    response = client_for(Role.VIEWER).get("/services/" + name)
    assert response.status_code == 200
    page = response.content.decode()
    assert "That is not a service name" in page
    assert "<img" not in page
    if name == HOSTILE:
        assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_a_hostile_version_reaches_the_page_only_as_json_data(catalog: None) -> None:
    revision({"services": {"catalog": {"split": {"v1": 50, "</script><b>x": 50}}}})
    page = client_for(Role.VIEWER).get("/services/catalog").content.decode()
    assert "</script><b>" not in page
    assert json_script(page, "service-page")["split"] == {"v1": 50.0, "</script><b>x": 50.0}


def test_editors_are_seeded_with_the_schema_defaults_and_their_texts(catalog: None) -> None:
    page = client_for(Role.VIEWER).get("/services/catalog").content.decode()
    data = json_script(page, "service-page")
    assert data["revision"] == 0 and data["split"] == {} and data["routes"] == []
    values = data["values"]
    assert values["outlier_detection.consecutive_5xx"] == OutlierDetection().consecutive_5xx == 5
    assert values["outlier_detection.interval_s"] == 10
    assert values["outlier_detection.base_ejection_s"] == 30
    assert values["outlier_detection.max_ejection_percent"] == 10
    assert values["circuit_breaker.max_requests"] == CircuitBreaker().max_requests
    by_path = {f["path"]: f for f in data["fields"]}
    assert by_path["outlier_detection.consecutive_5xx"]["default"] == 5
    # The tooltip is docs/policy.md's text for the field, on the label and the control.
    help_text = by_path["outlier_detection.consecutive_5xx"]["help"]
    assert help_text.startswith("Eject an instance after this many 5xx in a row.")
    assert f'title="{help_text}"' in page
    assert 'id="f-outlier-detection-consecutive-5xx"' in page
    assert "default: 10%" in page  # the max ejection percent's hint


def test_editors_are_seeded_with_the_value_in_force(catalog: None) -> None:
    revision({"default": {"timeouts": {"connect_ms": 250}},
              "services": {"catalog": {
                  "split": {"v1": 80, "v2": 20},
                  "outlier_detection": {"consecutive_5xx": 3},
                  "routes": [{"name": "canary", "match": {"headers": {"x-canary": "1"}},
                              "split": {"v2": 100}},
                             {"name": "fault-injection",
                              "fault": {"abort": {"status": 503, "percent": 5}}}]}}})
    data = json_script(client_for(Role.VIEWER).get("/services/catalog").content.decode(),
                       "service-page")
    assert data["revision"] == 1
    assert data["split"] == {"v1": 80, "v2": 20} and data["versions"] == ["v1", "v2"]
    assert data["values"]["outlier_detection.consecutive_5xx"] == 3
    assert data["values"]["timeouts.connect_ms"] == 250  # from default, merged
    assert data["values"]["fault.abort.status"] == 503
    assert data["values"]["fault.abort.percent"] == 5
    assert [r["name"] for r in data["routes"]] == ["canary"]  # the fault route has its editor
    assert data["marks"] == ["split", "breaker", "fault"]


def edge(target: str, by_version: dict[str, int], source: str = "frontend") -> dict[str, Any]:
    return {"source": source, "target": target, "requests": sum(by_version.values()),
            "by_version": {v: {"requests": n, "errors": 0, "rps": n / 60, "share": 0.0,
                               "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0}
                           for v, n in by_version.items()}}


def test_the_observed_share_sums_requests_per_version_over_every_edge_into_the_service() -> None:
    graph = {"edges": [edge("catalog", {"v1": 300, "v2": 100}),
                       edge("catalog", {"v1": 100, "v2": 300}, source="search"),
                       edge("reviews", {"v1": 999})]}
    observed = observed_by_version(graph, "catalog")
    assert {v: o["requests"] for v, o in observed.items()} == {"v1": 400, "v2": 400}
    assert {v: o["share"] for v, o in observed.items()} == {"v1": 0.5, "v2": 0.5}
    assert observed_by_version(graph, "reviews")["v1"]["share"] == 1.0
    assert observed_by_version({"edges": [{"source": "a", "target": "catalog"}]}, "catalog") == {}


def catalog_traffic(redis_client: redis.Redis, seconds_ago: float, requests: int, errors: int
                    ) -> None:
    """frontend -> catalog v1 in the graph store, ``seconds_ago`` (one second's bucket)."""
    writer = GraphWriter(clock=lambda: time.time() - seconds_ago)
    writer.add_edge("frontend", "catalog", requests, errors, {3: requests})
    writer.add_node("catalog", "v1", requests, errors, {3: requests})
    pipe = redis_client.pipeline(transaction=False)
    GraphWriter.queue_writes(pipe, writer.take())
    pipe.execute()


def test_the_service_page_carries_the_live_numbers_from_the_graph(
    catalog: None, redis_client: redis.Redis
) -> None:
    catalog_traffic(redis_client, seconds_ago=1, requests=120, errors=6)
    data = json_script(client_for(Role.VIEWER).get("/services/catalog").content.decode(),
                       "service-page")
    golden = data["graph"]["golden"]
    assert golden["requests"] == 120 and golden["success"] == pytest.approx(0.95)
    assert data["graph"]["breaker"] == {"ejections": 0, "overflows": 0}
    assert data["window_label"] == "last minute"


def test_the_service_page_takes_a_window_and_refuses_a_bad_one(
    catalog: None, redis_client: redis.Redis
) -> None:
    # 30 requests 20 s ago: inside the last minute, outside the last 10 s.
    catalog_traffic(redis_client, seconds_ago=20, requests=30, errors=0)
    viewer = client_for(Role.VIEWER)
    minute = json_script(viewer.get("/services/catalog").content.decode(), "service-page")
    assert minute["window"] == 60 and minute["graph"]["golden"]["requests"] == 30
    page = viewer.get("/services/catalog?window=10").content.decode()
    short = json_script(page, "service-page")
    assert short["window"] == 10 and short["window_label"] == "last 10 s"
    assert short["graph"]["golden"] is None  # catalog served nothing in the last 10 s
    assert 'aria-current="true" title="numbers and observed shares over the last 10 s"' in page
    for bad, reason in (("0", "between 1 and 3600"), ("abc", "whole number of seconds")):
        response = viewer.get(f"/services/catalog?window={bad}")
        assert response.status_code == 400
        assert reason in response.content.decode()


def test_the_graph_page_hands_graph_js_the_policy_marks(catalog: None) -> None:
    revision({"services": {"catalog": {"rate_limit": {"total": {"requests_per_second": 5}}}}})
    policy = json_script(client_for(Role.VIEWER).get("/").content.decode(), "graph-policy")
    assert policy["marks"] == {"revision": 1, "default": [], "services": {"catalog": ["rate_limit"]}}
    assert policy["labels"]["fault"] == "fault active"


def test_history_lists_revisions_with_author_source_and_message(catalog: None) -> None:
    revision({"services": {"catalog": {"split": {"v1": 100}}}})
    revision({}, number=2)
    page = client_for(Role.OPERATOR).get("/policy/history").content.decode()
    assert page.count('<tr data-revision="') == 2
    assert 'data-revision="1"' in page and "r2" in page
    assert "Roll back to this" in page  # for revision 1, not for the current one
    assert page.count('class="button small rollback"') == 1


def test_the_yaml_editor_starts_from_the_current_document(catalog: None) -> None:
    revision({"services": {"catalog": {"split": {"v1": 100}}}})
    page = client_for(Role.OPERATOR).get("/policy/edit").content.decode()
    assert "services:\n  catalog:\n    split:\n      v1: 100\n" in page
    assert json_script(page, "edit-page") == {"revision": 1}


def test_the_audit_page_lists_writes_and_refusals(catalog: None) -> None:
    operator = client_for(Role.OPERATOR)
    operator.post("/api/v1/policy/revisions", {"document": {}, "parent": 0, "message": "hi"},
                  content_type="application/json")
    viewer = Client()
    viewer.force_login(make_user("walter", Role.VIEWER))
    viewer.post("/api/v1/policy/revisions", {"document": {}, "parent": 1},
                content_type="application/json")
    page = operator.get("/policy/audit").content.decode()
    assert "walter" in page and "refused" in page and "needs the operator role" in page
    assert "operator" in page and "/api/v1/policy/revisions" in page
