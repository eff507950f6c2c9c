"""The policy API: revisions, validation, merge-patch, diff, rollback, roles, tokens, audit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from meshui.accounts.roles import Role
from meshui.policy.models import AuditEntry, Revision
from meshui.registry.models import Instance, Service
from tests.meshui.users import make_operator, make_user

pytestmark = pytest.mark.django_db

REVISIONS = "/api/v1/policy/revisions"
CANARY = {"services": {"catalog": {"split": {"v1": 80, "v2": 20}}}}


@pytest.fixture
def operator(meshui_settings: Any) -> Client:
    client = Client()
    client.force_login(make_operator("olivia"))
    return client


@pytest.fixture
def viewer(meshui_settings: Any) -> Client:
    client = Client()
    client.force_login(make_user("victor", Role.VIEWER))
    return client


def post(client: Client, path: str, body: dict[str, Any], **headers: str) -> Any:
    return client.post(path, body, content_type="application/json", headers=headers)


def live_instance(service: str, version: str, proxy_id: str) -> None:
    row, _ = Service.objects.get_or_create(name=service)
    now = timezone.now()
    Instance.objects.create(proxy_id=proxy_id, service=row, version=version,
                            address="127.0.0.1:1", connected=True, connected_at=now,
                            last_seen=now)


def test_before_any_revision_the_policy_is_revision_0_the_defaults(viewer: Client) -> None:
    assert viewer.get("/api/v1/policy").json() == {
        "revision": 0, "document": {}, "author": None, "message": "", "source": "default",
        "created_at": None, "parent": None}


def test_an_operator_writes_numbered_revisions_each_on_its_parent(operator: Client) -> None:
    first = post(operator, REVISIONS, {"document": CANARY, "message": "canary", "parent": 0})
    assert first.status_code == 201, first.content
    assert first.json()["revision"] == 1 and first.json()["parent"] is None
    assert (first.json()["author"], first.json()["source"]) == ("olivia", "api")
    second = post(operator, REVISIONS, {"document": {}, "message": "defaults", "parent": 1,
                                        "source": "cli"})
    assert second.status_code == 201
    assert (second.json()["revision"], second.json()["parent"]) == (2, 1)

    current = operator.get("/api/v1/policy").json()
    assert (current["revision"], current["document"], current["source"]) == (2, {}, "cli")
    listing = operator.get(REVISIONS, {"per_page": 1}).json()
    assert listing["count"] == 2 and [r["revision"] for r in listing["revisions"]] == [2]
    assert operator.get(REVISIONS, {"per_page": 1, "page": 2}).json()["revisions"][0][
        "document"] == CANARY
    assert operator.get(f"{REVISIONS}/1").json()["message"] == "canary"
    assert operator.get(f"{REVISIONS}/9").status_code == 404


@pytest.mark.parametrize("document, field", [
    ({"services": {"catalog": {"split": {"v1": 70, "v2": 20}}}}, "services.catalog.split"),
    ({"default": {"timeouts": {"request_ms": -5}}}, "default.timeouts.request_ms"),
    ({"services": {"catalog": {"retries": {"atempts": 3}}}}, "services.catalog.retries.atempts"),
    ({"revision": 4}, "revision"),
])
def test_an_invalid_document_is_a_400_naming_the_field_and_creates_nothing(
    operator: Client, document: dict[str, Any], field: str
) -> None:
    response = post(operator, REVISIONS, {"document": document, "parent": 0})
    assert response.status_code == 400
    body = response.json()
    assert (body["error"], body["field"]) == ("invalid_policy", field)
    assert body["detail"].startswith(f"{field}: ")
    assert not Revision.objects.exists()


def test_a_split_naming_a_version_no_live_instance_carries_is_refused_as_the_sidecars_would(
    operator: Client,
) -> None:
    live_instance("catalog", "v1", "catalog-v1-0")
    response = post(operator, REVISIONS, {"document": CANARY, "parent": 0})
    assert response.status_code == 400
    assert response.json()["field"] == "services.catalog.split.v2"
    assert "its instances have: v1" in response.json()["detail"]


def test_a_stale_parent_is_a_409_with_the_current_revision_and_nothing_is_overwritten(
    operator: Client,
) -> None:
    assert post(operator, REVISIONS, {"document": CANARY, "parent": 0}).status_code == 201
    late = post(operator, REVISIONS, {"document": {}, "parent": 0})
    assert late.status_code == 409
    assert late.json()["error"] == "stale_parent"
    assert late.json()["current"]["revision"] == 1
    assert late.json()["current"]["document"] == CANARY
    assert Revision.objects.count() == 1


def test_anonymous_and_viewer_writes_are_refused_audited_and_change_nothing(
    meshui_settings: Any, viewer: Client
) -> None:
    body = {"document": CANARY, "parent": 0}
    anonymous = post(Client(), REVISIONS, body)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthenticated"
    refused = post(viewer, REVISIONS, body)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert "needs the operator role" in refused.json()["detail"]
    patch = viewer.patch("/api/v1/policy/services/catalog", {"patch": {}, "parent": 0},
                         content_type="application/json")
    assert patch.status_code == 403
    rollback = post(viewer, "/api/v1/policy/rollback", {"revision": 1})
    assert rollback.status_code == 403
    assert not Revision.objects.exists()
    entries = list(AuditEntry.objects.newest_first().values_list("action", "username", "path"))
    assert ("refused", "", REVISIONS) in entries
    assert ("refused", "victor", REVISIONS) in entries
    assert ("refused", "victor", "/api/v1/policy/services/catalog") in entries


def test_refused_writes_from_one_address_are_counted_on_one_audit_row(meshui_settings: Any) -> None:
    for _ in range(5):
        post(Client(), REVISIONS, {"document": {}, "parent": 0})
    (entry,) = AuditEntry.objects.all()
    assert (entry.action, entry.count, entry.address) == ("refused", 5, "127.0.0.1")


def test_a_service_patch_changes_only_that_service_and_replaces_its_split(
    operator: Client,
) -> None:
    document = {"services": {"catalog": {"split": {"v1": 80, "v2": 10, "v3": 10},
                                         "load_balancer": "least_request"},
                             "reviews": {"split": {"v1": 50, "v2": 50}}}}
    assert post(operator, REVISIONS, {"document": document, "parent": 0}).status_code == 201
    response = operator.patch("/api/v1/policy/services/catalog", {
        "patch": {"split": {"v1": 50, "v2": 50}, "circuit_breaker": {"max_requests": 100}},
        "parent": 1, "message": "even", "source": "ui"}, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["document"] == {"services": {
        "catalog": {"split": {"v1": 50, "v2": 50}, "load_balancer": "least_request",
                    "circuit_breaker": {"max_requests": 100}},
        "reviews": {"split": {"v1": 50, "v2": 50}}}}
    assert response.json()["source"] == "ui"
    removed = operator.patch("/api/v1/policy/services/reviews", {
        "patch": {"split": None}, "parent": 2}, content_type="application/json")
    assert "reviews" not in removed.json()["document"]["services"]
    stale = operator.patch("/api/v1/policy/services/catalog", {"patch": {}, "parent": 1},
                           content_type="application/json")
    assert stale.status_code == 409
    bad = operator.patch("/api/v1/policy/services/Bad:Name", {"patch": {}, "parent": 3},
                         content_type="application/json")
    assert bad.status_code == 400 and bad.json()["parameter"] == "service"


def test_validate_is_a_dry_run_with_errors_warnings_and_the_diff(viewer: Client) -> None:
    live_instance("catalog", "v1", "catalog-v1-0")
    live_instance("catalog", "v2", "catalog-v2-0")
    response = post(viewer, "/api/v1/policy/validate", {"document": {
        "services": {"catalog": {"split": {"v1": 50, "v2": 50}}, "ghost": {}}}})
    body = response.json()
    assert response.status_code == 200 and body["valid"] and body["errors"] == []
    assert [w["field"] for w in body["warnings"]] == ["services.ghost"]
    assert {"field": "services", "op": "added", "old": None,
            "new": {"catalog": {"split": {"v1": 50, "v2": 50}}, "ghost": {}}} in body["diff"][
        "changes"]
    assert "+services:" in body["diff"]["unified"]
    invalid = post(viewer, "/api/v1/policy/validate", {"document": {"default": {"x": 1}}}).json()
    assert not invalid["valid"] and invalid["errors"][0]["field"] == "default.x"
    assert not Revision.objects.exists()


def test_the_mtls_and_authorization_sections_validate_through_the_api(viewer: Client) -> None:
    live_instance("payments", "v1", "payments-v1-0")
    live_instance("checkout", "v1", "checkout-v1-0")
    document = {"default": {"mtls": {"mode": "STRICT"}}, "services": {"payments": {
        "authorization": {"rules": [
            {"name": "checkout-pays", "action": "ALLOW", "sources": ["checkout", "chekout"]},
            {"name": "outside", "action": "AUDIT", "sources": ["unknown", "*"]}]}}}}
    body = post(viewer, "/api/v1/policy/validate", {"document": document}).json()
    assert body["valid"], body
    # A caller no sidecar ever joined as (a typo) is a warning naming the very field.
    assert [w["field"] for w in body["warnings"]] == [
        "services.payments.authorization.rules[0].sources[1]"]
    bad = {"services": {"payments": {"mtls": {"mode": "strict"},
                                     "authorization": {"rules": [{"name": "x", "action": "DENY"}]}}}}
    invalid = post(viewer, "/api/v1/policy/validate", {"document": bad}).json()
    assert not invalid["valid"] and invalid["errors"][0]["field"] == "services.payments.mtls.mode"


def test_diff_and_rollback_restore_an_earlier_document(operator: Client) -> None:
    post(operator, REVISIONS, {"document": CANARY, "parent": 0})
    post(operator, REVISIONS, {"document": {"services": {"catalog": {"split": {
        "v1": 50, "v2": 50}}}}, "parent": 1})
    diff = operator.get(f"{REVISIONS}/2/diff").json()
    assert diff["changes"] == [
        {"field": "services.catalog.split.v1", "op": "changed", "old": 80, "new": 50},
        {"field": "services.catalog.split.v2", "op": "changed", "old": 20, "new": 50}]
    assert "-      v1: 80\n-      v2: 20\n+      v1: 50\n+      v2: 50\n" in diff["unified"]
    assert operator.get(f"{REVISIONS}/2/diff", {"against": 2}).json()["changes"] == []

    rolled = post(operator, "/api/v1/policy/rollback", {"revision": 1})
    assert rolled.status_code == 201
    body = rolled.json()
    assert (body["revision"], body["parent"], body["source"]) == (3, 2, "rollback")
    assert body["document"] == CANARY and body["message"] == "roll back to revision 1"
    assert post(operator, "/api/v1/policy/rollback", {"revision": 9}).status_code == 404
    assert post(operator, "/api/v1/policy/rollback", {"revision": 1, "parent": 2}
                ).status_code == 409


def test_api_tokens_authenticate_writes_without_csrf_until_revoked(operator: Client) -> None:
    created = post(operator, "/api/v1/tokens", {"name": "laptop"})
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("mshu_") and created.json()["prefix"] == token[:12]
    cli = Client(enforce_csrf_checks=True)
    bearer = {"Authorization": f"Bearer {token}"}
    written = post(cli, REVISIONS, {"document": CANARY, "parent": 0, "source": "cli"}, **bearer)
    assert written.status_code == 201, written.content
    assert (written.json()["author"], written.json()["source"]) == ("olivia", "cli")
    assert cli.get("/api/v1/me", headers=bearer).json() == {"username": "olivia",
                                                            "role": "operator"}

    (listed,) = operator.get("/api/v1/tokens").json()["tokens"]
    assert listed["name"] == "laptop" and "token" not in listed
    assert listed["last_used_at"] is not None
    assert operator.delete(f"/api/v1/tokens/{listed['id']}").json()["revoked"] is True
    after = post(cli, REVISIONS, {"document": {}, "parent": 1}, **bearer)
    assert after.status_code == 401 and "revoked" in after.json()["detail"]
    assert cli.get("/api/v1/policy", headers={"Authorization": "Bearer mshu_nope"}
                   ).status_code == 401
    assert Revision.objects.count() == 1


def test_only_an_admin_creates_tokens_for_someone_else(operator: Client) -> None:
    make_user("ann", Role.ADMIN)
    refused = post(operator, "/api/v1/tokens", {"name": "x", "user": "ann"})
    assert refused.status_code == 403
    admin = Client()
    admin.force_login(make_user("root", Role.ADMIN))
    made = post(admin, "/api/v1/tokens", {"name": "ci", "user": "olivia"})
    assert made.status_code == 201 and made.json()["user"] == "olivia"
    assert [t["user"] for t in admin.get("/api/v1/tokens").json()["tokens"]] == ["olivia"]


def test_the_audit_log_lists_every_write_with_who_how_and_from_where(operator: Client) -> None:
    post(operator, REVISIONS, {"document": CANARY, "parent": 0, "message": "canary",
                               "source": "ui"})
    post(operator, "/api/v1/policy/rollback", {"revision": 1, "message": "undo"})
    post(Client(), REVISIONS, {"document": {}, "parent": 2})
    entries = operator.get("/api/v1/audit").json()["entries"]
    assert [(e["action"], e["user"], e["source"], e["revision"]) for e in entries] == [
        ("refused", None, "", None), ("rollback", "olivia", "rollback", 2),
        ("revision", "olivia", "ui", 1)]
    assert entries[1]["detail"] == "undo" and entries[1]["address"] == "127.0.0.1"
    assert timezone.now() - timezone.datetime.fromisoformat(entries[0]["at"]) < timedelta(
        minutes=1)
