"""The policy API's YAML text and service-patch forms: parsed on the server, errors at a line."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from meshui.policy.models import Revision
from meshui.policy.yaml_text import YamlProblem, line_of, load
from tests.meshui.users import make_operator

pytestmark = pytest.mark.django_db

NINETY = """services:
  catalog:
    split:
      v1: 50
      v2: 40
"""


@pytest.fixture
def operator(meshui_settings: Any) -> Client:
    client = Client()
    client.force_login(make_operator())
    return client


def post(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, body, content_type="application/json")


def test_yaml_text_is_validated_and_each_error_carries_its_line(operator: Client) -> None:
    answer = post(operator, "/api/v1/policy/validate", {"yaml": NINETY})
    assert answer.status_code == 200
    body = answer.json()
    assert body["valid"] is False
    assert body["errors"] == [{"field": "services.catalog.split",
                               "detail": "weights must sum to 100, got 90", "line": 3}]


def test_yaml_that_does_not_parse_is_invalid_at_its_line_not_an_error(operator: Client) -> None:
    body = post(operator, "/api/v1/policy/validate", {"yaml": "services:\n  catalog: [1\n"}).json()
    assert body["valid"] is False and body["document"] is None
    assert body["errors"][0]["field"] == "yaml" and body["errors"][0]["line"] == 3


def test_a_revision_from_yaml_is_written_and_a_bad_one_creates_nothing(operator: Client) -> None:
    refused = post(operator, "/api/v1/policy/revisions", {"yaml": NINETY, "parent": 0})
    assert refused.status_code == 400
    assert refused.json()["field"] == "services.catalog.split" and refused.json()["line"] == 3
    assert not Revision.objects.exists()
    good = post(operator, "/api/v1/policy/revisions",
                {"yaml": NINETY.replace("40", "50"), "parent": 0, "source": "ui"})
    assert good.status_code == 201, good.content
    assert Revision.objects.get().document == {"services": {"catalog": {"split": {"v1": 50, "v2": 50}}}}


def test_a_write_gives_document_or_yaml_never_both(operator: Client) -> None:
    both = post(operator, "/api/v1/policy/revisions", {"yaml": "{}", "document": {}, "parent": 0})
    assert both.status_code == 400 and both.json()["parameter"] == "document"
    neither = post(operator, "/api/v1/policy/revisions", {"parent": 0})
    assert neither.status_code == 400


def test_validate_takes_one_service_s_patch_of_the_current_revision(operator: Client) -> None:
    post(operator, "/api/v1/policy/revisions",
         {"document": {"services": {"catalog": {"split": {"v1": 80, "v2": 20}}}}, "parent": 0})
    body = post(operator, "/api/v1/policy/validate",
                {"service": "catalog", "patch": {"split": {"v1": 50, "v2": 50},
                                                 "circuit_breaker": {"max_requests": 10}}}).json()
    assert body["valid"] and body["revision"] == 1
    assert body["document"] == {"services": {"catalog": {
        "split": {"v1": 50, "v2": 50}, "circuit_breaker": {"max_requests": 10}}}}
    assert {c["field"] for c in body["diff"]["changes"]} == {
        "services.catalog.split.v1", "services.catalog.split.v2",
        "services.catalog.circuit_breaker"}
    bad = post(operator, "/api/v1/policy/validate", {"service": "Bad Name", "patch": {}})
    assert bad.status_code == 400 and bad.json()["parameter"] == "service"


def test_the_marks_say_which_services_carry_policy(operator: Client) -> None:
    assert operator.get("/api/v1/policy/marks").json() == {
        "revision": 0, "default": [], "services": {}}
    post(operator, "/api/v1/policy/revisions", {"parent": 0, "document": {"services": {
        "catalog": {"split": {"v1": 100}, "circuit_breaker": {"max_requests": 5}},
        "reviews": {"routes": [{"name": "f", "fault": {"delay": {"fixed_ms": 5}}}]},
        "ratings": {"retries": {"attempts": 1}}}}})
    assert operator.get("/api/v1/policy/marks").json()["services"] == {
        "catalog": ["split", "breaker"], "ratings": [], "reviews": ["fault"]}


@pytest.mark.parametrize("text, words", [
    ("a: &x [1]\nb: *x\n", "anchors and aliases"),
    ("[" * 40 + "]" * 40, "nests deeper than 32"),
    ("- 1\n- 2\n", "must be a mapping"),
    ("x" * (256 * 1024 + 1), "at most 262144"),
])
def test_untrusted_yaml_is_bounded_before_anything_is_built(text: str, words: str) -> None:
    with pytest.raises(YamlProblem, match=words):
        load(text)


def test_a_field_s_line_is_its_key_s_even_with_dots_in_a_version() -> None:
    text = "services:\n  catalog:\n    split: {v1: 50, v1.2: 40}\n    routes:\n      - name: a\n"
    assert line_of(text, "services.catalog.split.v1.2") == 3
    assert line_of(text, "services.catalog.routes[0].name") == 5
    assert line_of(text, "services.catalog.retries.attempts") == 2  # missing: its parent
