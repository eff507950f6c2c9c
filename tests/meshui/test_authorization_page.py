"""What the service page hands its authorization editor, and what the graph page's first
frame says of identities, through Django's test client with the real graph store."""

from __future__ import annotations

from typing import Any

import pytest

from meshui.accounts.roles import Role
from meshui.policy.authorization_page import PROPOSAL_WINDOWS, callers
from meshui.registry.models import Service
from proxies.policy.schema import AUTHORIZATION_ACTIONS
from tests.meshui.sample_security import write_caller
from tests.meshui.test_policy_pages import client_for, json_script, revision

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(meshui_settings: Any) -> None:
    Service.objects.create(name="catalog")


def editor(page: str) -> dict[str, Any]:
    return json_script(page, "service-page")["authorization"]


def test_the_editor_starts_from_the_rules_in_force_with_the_schema_s_vocabulary(catalog: None) -> None:
    revision({"default": {"authorization": {"rules": [{"name": "no-admin", "action": "DENY",
                                                        "path_prefix": "/admin"}]}},
              "services": {"catalog": {"authorization": {"rules": [
                  {"name": "seen-frontend", "action": "AUDIT", "sources": ["frontend"]}]}}}})
    data = editor(client_for(Role.VIEWER).get("/services/catalog").content.decode())
    # The service's list replaces default's (lists are not merged: docs/policy.md).
    assert data["rules"] == [{"name": "seen-frontend", "action": "AUDIT", "sources": ["frontend"],
                              "methods": [], "path_prefix": None, "headers": {}}]
    assert data["actions"] == list(AUTHORIZATION_ACTIONS)
    assert (data["any_identity"], data["unauthenticated"]) == ("*", "unknown")
    assert data["proposal_prefix"] == "seen-" and data["rule_name_max"] == 63
    assert data["proposal_windows"] == [[900, "last 15 min"], [3600, "last hour"]]
    assert data["trust_domain"] == "meshui.local"


def test_the_page_offers_the_proposal_windows_and_says_what_the_rules_do(catalog: None) -> None:
    page = client_for(Role.OPERATOR).get("/services/catalog").content.decode()
    for seconds, _ in PROPOSAL_WINDOWS:
        assert f'<option value="{seconds}"' in page
    assert "Allow only what you see" in page and 'id="authz-enforce"' in page
    assert "AUDIT rules are ALLOW rules on trial" in page


def test_the_callers_carry_what_was_denied_and_would_be_in_the_window(
    catalog: None, redis_url: str, meshui_settings: Any
) -> None:
    meshui_settings.MESHUI_TRUST_DOMAIN = "prod.example"
    write_caller(redis_url, "frontend", "catalog", 40, mtls=30, audit_denied=0)
    write_caller(redis_url, "reviews", "catalog", 8, mtls=8, audit_denied=8, denied=2)
    write_caller(redis_url, "unknown", "catalog", 3)
    write_caller(redis_url, "frontend", "auth", 99, mtls=99)
    data = editor(client_for(Role.VIEWER).get("/services/catalog").content.decode())
    assert data["callers"] == [
        {"source": "frontend", "identity": "spiffe://prod.example/service/frontend",
         "requests": 40, "mtls_share": 0.75, "denied": 0, "audit_denied": 0},
        {"source": "reviews", "identity": "spiffe://prod.example/service/reviews",
         "requests": 8, "mtls_share": 1.0, "denied": 2, "audit_denied": 8},
        {"source": "unknown", "identity": None, "requests": 3, "mtls_share": None,
         "denied": 0, "audit_denied": 0}]
    assert data["trust_domain"] == "prod.example"


def test_without_the_graph_store_the_callers_are_unknown_not_empty(catalog: None,
                                                                     meshui_settings: Any) -> None:
    meshui_settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    data = editor(client_for(Role.VIEWER).get("/services/catalog").content.decode())
    assert data["callers"] is None


def test_a_hostile_caller_or_rule_reaches_the_page_only_as_json_data(
    catalog: None, redis_url: str
) -> None:
    hostile = "</script><img src=x onerror=alert(1)>"
    graph = {"edges": [{"source": hostile, "target": "catalog", "requests": 1, "events": {}}]}
    (row,) = callers(graph, "catalog", "meshui.local")
    assert row["identity"] == f"spiffe://meshui.local/service/{hostile}"
    write_caller(redis_url, hostile, "catalog", 5)
    page = client_for(Role.VIEWER).get("/services/catalog").content.decode()
    assert "</script><img" not in page and "<img src=x" not in page
    assert editor(page)["callers"][0]["source"] == hostile


def test_the_graph_page_names_identities_in_the_configured_trust_domain(
    catalog: None, redis_url: str, meshui_settings: Any
) -> None:
    meshui_settings.MESHUI_TRUST_DOMAIN = "prod.example"
    write_caller(redis_url, "frontend", "catalog", 10, mtls=10, denied=3)
    initial = json_script(client_for(Role.VIEWER).get("/").content.decode(), "graph-initial")
    figure = initial["figure"]
    assert "spiffe://prod.example/service/frontend" in figure["data"][0]["text"][0]
    names = {a.get("name") for a in figure["layout"]["annotations"]}
    assert {"mtls-0", "denied-0"} <= names
