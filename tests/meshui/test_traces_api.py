"""GET /api/v1/traces and /api/v1/traces/{trace_id}: the trace store through the API."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.collector.trace_build import CLIENT, SERVER, S, trace_id
from tests.meshui.sample_traces import store

pytestmark = pytest.mark.django_db
NOW = time.time()


@pytest.fixture
def reader(meshui_settings: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_user("reader", password="pw"))
    return client


@pytest.fixture
def stored(redis_url: str) -> None:
    store(redis_url,
          S("web", 1, 1, kind=CLIENT, name="GET api", start_s=NOW - 5, ms=12,
            attributes={"destination.service": "api"}),
          S("api", 1, 2, parent=1, kind=SERVER, name="<script>alert(1)</script>", start_s=NOW - 4.999,
            ms=10, error=True, attributes={"http.response.status_code": 503, "note": "<b>"},
            events=[("meshui.retry", NOW - 4.998, {"attempt": 2})]),
          S("web", 2, 3, start_s=NOW - 2, ms=1))


def test_a_search_lists_the_matching_traces_newest_first(reader: Client, stored: None) -> None:
    answer = reader.get("/api/v1/traces", {"service": "web"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert [t["trace_id"] for t in body["traces"]] == [trace_id(2).hex(), trace_id(1).hex()]
    assert body["truncated"] is False and body["examined"] == 2
    failed = reader.get("/api/v1/traces", {"source": "web", "target": "api", "status": "error",
                                           "min_ms": "11", "start": NOW - 60, "end": NOW}).json()
    (summary,) = failed["traces"]
    assert summary == {
        "trace_id": trace_id(1).hex(), "start": summary["start"], "duration_ms": 12.0,
        "max_span_ms": 12.0, "error": True, "kept": True, "span_count": 2,
        "services": ["web", "api"], "edges": [{"source": "web", "target": "api"}],
        "operations": ["GET api", "<script>alert(1)</script>"],
        "root": {"service": "web", "operation": "GET api"}}
    assert abs(summary["start"] - (NOW - 5)) < 0.001
    ok = reader.get("/api/v1/traces", {"status": "ok"}).json()
    assert ok["traces"][0]["trace_id"] == trace_id(2).hex()
    by_id = reader.get("/api/v1/traces", {"trace_id": trace_id(2).hex()}).json()
    assert by_id["traces"][0]["span_count"] == 1


def test_a_trace_opens_with_its_spans_attributes_and_events_as_data(reader: Client, stored: None) -> None:
    answer = reader.get(f"/api/v1/traces/{trace_id(1).hex()}")
    assert answer.status_code == 200, answer.content
    trace = answer.json()
    first, second = trace["spans"]
    assert (first["depth"], second["depth"], second["parent_span_id"]) == (0, 1, first["span_id"])
    assert second["name"] == "<script>alert(1)</script>" and second["attributes"]["note"] == "<b>"
    assert second["events"] == [{"name": "meshui.retry", "time": second["events"][0]["time"],
                                 "offset_ms": pytest.approx(2.0, abs=0.01), "attributes": {"attempt": 2}}]
    assert second["status"] == "error" and second["kind"] == "server" and second["service"] == "api"


def test_a_trace_that_is_not_stored_is_a_404(reader: Client, stored: None) -> None:
    answer = reader.get(f"/api/v1/traces/{'ab' * 16}")
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"


@pytest.mark.parametrize(("path", "query", "parameter", "detail"), [
    ("/api/v1/traces/ABCDEF0123456789abcdef0123456789", {}, "trace_id", "lower-case hex"),
    ("/api/v1/traces/1234", {}, "trace_id", "32 lower-case hex"),
    ("/api/v1/traces/" + "0" * 32, {}, "trace_id", "not all zero"),
    ("/api/v1/traces", {"trace_id": "xyz"}, "trace_id", "32 lower-case hex"),
    ("/api/v1/traces", {"limit": 0}, "limit", "between 1 and 1000"),
    ("/api/v1/traces", {"limit": 1001}, "limit", "between 1 and 1000"),
    ("/api/v1/traces", {"limit": "many"}, "limit", "limit"),
    ("/api/v1/traces", {"min_ms": -1}, "min_ms", "milliseconds"),
    ("/api/v1/traces", {"min_ms": "nan"}, "min_ms", "milliseconds"),
    ("/api/v1/traces", {"min_ms": 10, "max_ms": 5}, "min_ms", "must not be above max_ms"),
    ("/api/v1/traces", {"start": 10}, "start", "epoch seconds"),
    ("/api/v1/traces", {"start": NOW, "end": NOW - 10}, "start", "must not be after end"),
    ("/api/v1/traces", {"end": "inf"}, "end", "epoch seconds"),
    ("/api/v1/traces", {"status": "failed"}, "status", "'error' or 'ok'"),
    ("/api/v1/traces", {"source": "web"}, "target", "source and target together"),
    ("/api/v1/traces", {"service": "a\x1fb"}, "service", "control"),
    ("/api/v1/traces", {"operation": "x" * 129}, "operation", "longer than 128"),
])
def test_a_bad_trace_query_is_a_400_that_names_the_parameter(
        reader: Client, path: str, query: dict[str, Any], parameter: str, detail: str) -> None:
    answer = reader.get(path, query)
    assert answer.status_code == 400, answer.content
    body = answer.json()
    assert body["error"] == "invalid_parameter" and body["parameter"] == parameter
    assert detail in body["detail"]


def test_reading_traces_needs_a_login(meshui_settings: Any) -> None:
    assert Client().get("/api/v1/traces").status_code == 401
    assert Client().get(f"/api/v1/traces/{'ab' * 16}").status_code == 401
