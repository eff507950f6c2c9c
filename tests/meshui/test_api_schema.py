"""The OpenAPI document is generated from the code and complete: no route under /api/v1/ that
it leaves out, no response shape that differs from what the endpoints send."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, get_type_hints

import pytest
import redis
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, include, path, resolve
from ninja.errors import ValidationError

from collector.graphstore import (
    EdgeJSON,
    GraphJSON,
    HiddenJSON,
    InstanceJSON,
    NodeJSON,
    VersionTrafficJSON,
    fetch_graph,
)
from collector.graphwriter import GraphWriter
from meshui.api.errors import Error, ErrorCode, invalid_parameter
from meshui.dashboard.instance_graph import LiveInstanceJSON
from meshui.dashboard.schemas import (
    CallerShare,
    Edge,
    EdgeEvents,
    Graph,
    Hidden,
    InstanceTraffic,
    LiveInstance,
    Node,
    VersionTraffic,
)
from meshui.registry.instance_views import CallerShare as CallerShareJSON
from proxies.telemetry.events import EDGE_EVENTS, EVENT_KEYS
from tests.meshui.users import make_operator

pytestmark = pytest.mark.django_db

API = "api/v1/"
# django-ninja's own routes: the document itself, its docs page, and the root (a 404 that
# names the docs page). Everything else under /api/v1/ must be in the document.
DOCUMENTATION_ROUTES = {"openapi-json", "openapi-view", "api-root"}


def routes(patterns: Sequence[URLPattern | URLResolver], prefix: str = ""
           ) -> Iterator[tuple[str, URLPattern]]:
    """Every (route, pattern) the URL resolver knows, includes expanded."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def openapi_path(route: str) -> str:
    """Django's ``api/v1/services/<str:name>`` is OpenAPI's ``/api/v1/services/{name}``."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def undocumented(patterns: Sequence[URLPattern | URLResolver], document: dict[str, Any]
                 ) -> list[str]:
    """The /api/v1/ routes of ``patterns`` that ``document`` does not describe."""
    served = {openapi_path(route) for route, pattern in routes(patterns)
              if route.startswith(API) and pattern.name not in DOCUMENTATION_ROUTES}
    return sorted(served - set(document["paths"]))


@pytest.fixture
def reader(meshui_settings: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_user("reader", password="pw"))
    return client


@pytest.fixture
def document(reader: Client) -> dict[str, Any]:
    response = reader.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def test_every_api_route_the_resolver_knows_is_in_the_generated_document(
    document: dict[str, Any],
) -> None:
    assert document["openapi"].startswith("3.1")
    assert undocumented(get_resolver().url_patterns, document) == []
    # ...and nothing is described that is not served.
    for documented in document["paths"]:
        assert resolve(documented).url_name not in DOCUMENTATION_ROUTES, documented


def test_a_route_added_without_the_api_is_caught(document: dict[str, Any]) -> None:
    def plain_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    patterns = [*get_resolver().url_patterns,
                path(API, include([path("secrets/<int:key>", plain_view)]))]
    assert undocumented(patterns, document) == ["/api/v1/secrets/{key}"]


def test_the_document_describes_parameters_errors_and_retry_after(
    document: dict[str, Any],
) -> None:
    graph = document["paths"]["/api/v1/graph"]["get"]
    window, level = graph["parameters"]
    assert (window["name"], window["in"], window["required"]) == ("window", "query", False)
    assert (level["name"], level["schema"]["enum"]) == ("level", ["service", "instance"])
    assert {key: window["schema"][key] for key in ("type", "minimum", "maximum", "default")} == {
        "type": "integer", "minimum": 1, "maximum": 3600, "default": 60}
    for api_path, statuses in {"/api/v1/graph": {"200", "400", "401", "503"},
                               "/api/v1/services": {"200", "401"},
                               "/api/v1/instances": {"200", "401", "503"}}.items():
        operation = document["paths"][api_path]["get"]
        assert set(operation["responses"]) == statuses, api_path
        assert operation["security"] == [{"TokenAuth": []}, {"SessionAuth": []}]
        if "503" in statuses:
            assert "Retry-After" in operation["responses"]["503"]["headers"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["SessionAuth"] == {"type": "apiKey", "in": "cookie", "name": "sessionid"}
    assert schemes["TokenAuth"]["scheme"] == "bearer"
    graph_schema = document["components"]["schemas"]["Graph"]
    assert graph_schema["required"] == ["window", "generated_at", "nodes", "edges", "hidden"]


@pytest.mark.parametrize("schema, shape", [
    (Graph, GraphJSON), (Node, NodeJSON), (Edge, EdgeJSON), (Hidden, HiddenJSON),
    (VersionTraffic, VersionTrafficJSON), (InstanceTraffic, InstanceJSON),
    (LiveInstance, LiveInstanceJSON), (CallerShare, CallerShareJSON),
])
def test_the_graph_schemas_are_the_graph_store_s_typed_dicts(schema: Any, shape: Any) -> None:
    hints = get_type_hints(shape)
    assert set(schema.model_fields) == set(hints)
    # Each checked by its own case.
    nested = {"nodes", "edges", "events", "hidden", "by_version", "instances", "callers"}
    for name, field in schema.model_fields.items():
        if name not in nested:
            assert field.annotation == hints[name], name
    if schema is Edge:  # versions -> the store's VersionTrafficJSON, restated as VersionTraffic
        assert hints["by_version"] == dict[str, VersionTrafficJSON]
        assert schema.model_fields["by_version"].annotation == dict[str, VersionTraffic]
    if schema is Node:  # level=instance only: NotRequired in the store, None by default here;
        # meshui adds the sidecars' live state to each of the store's instances.
        assert hints["instances"] == list[InstanceJSON]
        assert get_type_hints(InstanceJSON).items() <= get_type_hints(LiveInstanceJSON).items()
        assert schema.model_fields["instances"].annotation == list[LiveInstance] | None
    if schema is LiveInstance:
        assert hints["callers"] == list[CallerShareJSON]
        assert schema.model_fields["callers"].annotation == list[CallerShare]


def test_the_document_describes_an_edge_s_split_by_version(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    by_version = schemas["Edge"]["properties"]["by_version"]
    assert by_version["type"] == "object"
    assert by_version["additionalProperties"] == {"$ref": "#/components/schemas/VersionTraffic"}
    assert "by_version" in schemas["Edge"]["required"]
    version = schemas["VersionTraffic"]
    assert version["required"] == list(VersionTrafficJSON.__annotations__)
    assert version["required"] == ["requests", "errors", "rps", "share", "p50_ms", "p95_ms", "p99_ms"]
    assert version["additionalProperties"] is False
    assert (version["properties"]["share"]["minimum"], version["properties"]["share"]["maximum"]) == (0, 1)


def test_the_edge_events_schema_lists_every_event_the_graph_carries_in_order(
    document: dict[str, Any],
) -> None:
    assert list(EdgeEvents.model_fields) == list(EVENT_KEYS)
    schema = document["components"]["schemas"]["EdgeEvents"]
    assert schema["required"] == list(EVENT_KEYS)
    assert schema["additionalProperties"] is False
    for event in EDGE_EVENTS:
        assert schema["properties"][event.key] == {
            "type": "integer", "title": schema["properties"][event.key]["title"],
            "description": event.description}


def key_order(value: Any) -> Any:
    """The keys of every object in ``value``, nested, in the order they appear."""
    if isinstance(value, dict):
        return [(key, key_order(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [key_order(item) for item in value]
    return None


def test_the_graph_json_keeps_the_graph_store_s_fields_and_order(
    reader: Client, redis_client: redis.Redis
) -> None:
    writer = GraphWriter(clock=lambda: time.time() - 1)
    writer.add_edge("unknown", "frontend", 10, 1, {3: 10}, version="v1")
    writer.add_node("frontend", "v1", 10, 1, {3: 10})
    pipe = redis_client.pipeline(transaction=False)
    GraphWriter.queue_writes(pipe, writer.take())
    pipe.execute()

    served = reader.get("/api/v1/graph").json()
    stored = fetch_graph(redis_client, 60)
    assert key_order(served) == key_order(stored)
    assert {**served, "generated_at": 0} == {**stored, "generated_at": 0}


def test_every_error_the_api_answers_is_the_documented_shape(
    meshui_settings: Any, document: dict[str, Any]
) -> None:
    writer = Client(enforce_csrf_checks=True)
    writer.force_login(User.objects.get(username="reader"))
    writer.get("/accounts/login/")  # the csrftoken cookie
    token = writer.cookies["csrftoken"].value
    viewer = Client()
    viewer.force_login(User.objects.create_user("viewer", password="pw"))
    operator = Client()
    operator.force_login(make_operator("operator"))
    policy = {"document": {}, "parent": 0}
    answers = [
        (ErrorCode.UNAUTHENTICATED, Client(enforce_csrf_checks=True).post("/api/v1/graph")),
        (ErrorCode.CSRF_FAILED, writer.post("/api/v1/graph")),
        (ErrorCode.METHOD_NOT_ALLOWED,
         writer.post("/api/v1/graph", headers={"X-CSRFToken": token})),
        (ErrorCode.FORBIDDEN, viewer.post("/api/v1/policy/revisions", policy,
                                          content_type="application/json")),
        (ErrorCode.NOT_FOUND, viewer.get("/api/v1/policy/revisions/7")),
        (ErrorCode.INVALID_POLICY, operator.post(
            "/api/v1/policy/revisions", {**policy, "document": {"default": {"timeouts": {
                "connect_ms": -1}}}}, content_type="application/json")),
        (ErrorCode.STALE_PARENT, operator.post("/api/v1/policy/revisions", {
            **policy, "parent": 3}, content_type="application/json")),
    ]
    meshui_settings.MESHUI_PUBLIC_READ = True
    answers.append((ErrorCode.INVALID_PARAMETER, Client().get("/api/v1/graph", {"window": "0"})))
    meshui_settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    answers.append((ErrorCode.DATA_SOURCE_UNAVAILABLE, Client().get("/api/v1/instances")))

    for code, response in answers:
        assert response.status_code == code.status, response.content
        assert Error.model_validate(response.json()).error == code
    codes = {code for code, _ in answers}
    assert set(ErrorCode) == codes  # every code is one the API really answers
    responses = dict((code, response) for code, response in answers)
    assert responses[ErrorCode.METHOD_NOT_ALLOWED]["Allow"] == "GET, HEAD"
    assert responses[ErrorCode.DATA_SOURCE_UNAVAILABLE]["Retry-After"] == "2"
    enum = document["components"]["schemas"]["ErrorCode"]["enum"]
    assert sorted(enum) == sorted(code.value for code in codes)


def test_the_docs_list_every_error_code_with_its_status_and_no_other() -> None:
    api_md = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    table = re.findall(r"^\| (\d{3}) \| `(\w+)` \|", api_md, re.M)
    assert table == [(str(code.status), code.value) for code in ErrorCode]


def test_a_parameter_s_own_sentence_is_the_400_detail() -> None:
    error = invalid_parameter(ValidationError([{
        "type": "value_error", "loc": ("query", "window"), "msg": "Value error, window must ...",
        "ctx": {"error": "window must be between 1 and 3600 seconds, got 0"}}]))
    assert (error.status, error.error) == (400, ErrorCode.INVALID_PARAMETER)
    assert error.detail == "window must be between 1 and 3600 seconds, got 0"
    assert error.extra == {"parameter": "window"}


def test_any_other_validation_failure_is_a_400_naming_the_field() -> None:
    """django-ninja's default would be a 422 with pydantic's error list."""
    error = invalid_parameter(ValidationError([
        {"type": "missing", "loc": ("body", "payload", "name"), "msg": "Field required"},
        {"type": "int_parsing", "loc": ("query", "limit"), "msg": "Input should be an integer"},
    ]))
    assert error.status == 400
    assert error.response().status_code == 400
    assert error.extra == {"parameter": "payload.name"}
    assert error.detail == "payload.name: Field required"


def test_the_docs_page_follows_the_read_rule(meshui_settings: Any) -> None:
    anonymous = Client()
    page = anonymous.get("/api/v1/docs")
    assert page.status_code == 302 and page["Location"] == "/accounts/login/?next=/api/v1/docs"
    assert anonymous.get("/api/v1/openapi.json").status_code == 401
    meshui_settings.MESHUI_PUBLIC_READ = True
    page = anonymous.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<script src="/static/ninja/swagger-ui-bundle.js">' in html  # ours, not a CDN's
    assert "cdn" not in html.lower()
    assert anonymous.post("/api/v1/openapi.json").status_code == 401  # writes need a login
