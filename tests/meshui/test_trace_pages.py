"""The trace pages' views: who may read them, the trace id in the URL, the server's settings,
and the span events' words against the events the sidecar really adds."""

from __future__ import annotations

import ast
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from meshui.dashboard.trace_pages import (
    MAX_ROWS,
    PAGE_LIMIT,
    SPAN_EVENTS,
    event_words,
    search_page_settings,
    ttl_label,
)

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def reader(meshui_settings: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_user("reader", password="pw"))
    return client


def page_json(body: str, element_id: str) -> Any:
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', body, re.S)
    assert found, f"no #{element_id}"
    return json.loads(found.group(1))


@pytest.mark.parametrize("path", ["/traces", "/traces?service=catalog&min_ms=200", f"/traces/{TRACE}"])
def test_the_trace_pages_send_an_anonymous_reader_to_the_login_page(meshui_settings: Any, path: str) -> None:
    answer = Client().get(path)
    assert answer.status_code == 302
    assert answer["Location"].startswith("/accounts/login/?next=")
    assert answer["Location"].endswith(path.replace("?", "%3F").replace("&", "%26").replace("=", "%3D"))


def test_with_public_read_an_anonymous_reader_sees_them(meshui_settings: Any) -> None:
    meshui_settings.MESHUI_PUBLIC_READ = True
    assert Client().get("/traces").status_code == 200
    assert Client().get(f"/traces/{TRACE}").status_code == 200


def test_the_search_page_is_a_shell_with_the_servers_settings_and_a_nav_link(reader: Client) -> None:
    answer = reader.get("/traces", {"service": "catalog"})
    assert answer.status_code == 200
    body = answer.content.decode()
    assert page_json(body, "traces-page") == search_page_settings()
    assert search_page_settings()["limit"] == PAGE_LIMIT
    assert '<a href="/traces" class="active">Traces</a>' in body
    assert 'src="/static/dashboard/traces.js"' in body and 'src="/static/vendor/plotly.min.js"' in body
    assert "the last 1 h" in body


def test_every_page_links_to_the_traces(reader: Client) -> None:
    assert '<a href="/traces" class="">Traces</a>' in reader.get("/").content.decode()


@pytest.mark.parametrize("given", [TRACE, TRACE.upper(), f"  {TRACE}  "])
def test_a_trace_id_in_the_search_opens_that_traces_waterfall(reader: Client, given: str) -> None:
    answer = reader.get("/traces", {"trace_id": given, "service": "x"})
    assert answer.status_code == 302 and answer["Location"] == f"/traces/{TRACE}"


@pytest.mark.parametrize("given", ["xyz", "0" * 32, TRACE[:-1]])
def test_a_trace_id_the_search_cannot_open_stays_on_the_search_page(reader: Client, given: str) -> None:
    # The script shows why next to the field.
    assert reader.get("/traces", {"trace_id": given}).status_code == 200


def test_the_waterfall_page_names_its_trace_and_reads_the_event_words_from_the_server(
        reader: Client) -> None:
    answer = reader.get(f"/traces/{TRACE}")
    assert answer.status_code == 200
    body = answer.content.decode()
    page = page_json(body, "trace-page")
    assert page["trace_id"] == TRACE and page["link"] is None and page["max_rows"] == MAX_ROWS
    assert page["events"] == event_words() and page["events"]["retry"]["label"] == "retry #{attempt}"
    assert f'<code class="crumb-name trace-id" id="trace-id">{TRACE}</code>' in body
    assert 'id="external-link"' not in body
    assert 'src="/static/dashboard/waterfall.js"' in body


def test_an_upper_case_trace_id_is_sent_to_its_canonical_page(reader: Client) -> None:
    answer = reader.get(f"/traces/{TRACE.upper()}")
    assert answer.status_code == 302 and answer["Location"] == f"/traces/{TRACE}"


@pytest.mark.parametrize(("given", "why"), [
    ("1234", "32 lower-case hex digits"),
    ("0" * 32, "not all zero"),
    ("<script>alert(1)", "32 lower-case hex digits"),
    ("g" * 32, "32 lower-case hex digits"),
])
def test_a_malformed_trace_id_is_a_400_page_that_says_why(reader: Client, given: str, why: str) -> None:
    answer = reader.get(f"/traces/{given}")
    assert answer.status_code == 400
    body = answer.content.decode()
    assert "Not a trace id" in body and why in html.unescape(body)
    assert "<script>alert" not in body
    assert 'src="/static/dashboard/waterfall.js"' not in body  # nothing to fetch


def test_the_waterfall_links_to_the_long_term_backend_when_configured(reader: Client, settings: Any) -> None:
    settings.MESHUI_TRACE_LINK_TEMPLATE = "http://jaeger:16686/trace/{trace_id}"
    body = reader.get(f"/traces/{TRACE}").content.decode()
    assert f'href="http://jaeger:16686/trace/{TRACE}"' in body
    assert "Open in jaeger:16686" in body and 'rel="noopener noreferrer"' in body
    assert page_json(body, "trace-page")["link"] == f"http://jaeger:16686/trace/{TRACE}"


def test_the_event_words_name_every_span_event_the_sidecar_adds() -> None:
    """Every ``self.event("<name>", ...)`` under proxies/ has its words; a new one fails here."""
    added: set[str] = set()
    for source in (ROOT / "proxies").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "event" and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                added.add(node.args[0].value)
    assert added >= {"retry", "endpoint_skipped", "ejected", "fault_injected", "rate_limited",
                     "overflow", "retry_budget_exhausted"}
    assert added <= {event.name for event in SPAN_EVENTS}
    documented = (ROOT / "docs" / "sidecar.md").read_text()
    assert all(f"| `{name}` |" in documented for name in added)


def test_each_event_label_names_only_attributes_the_sidecar_gives_it() -> None:
    for event in SPAN_EVENTS:
        assert event.tone in ("policy", "bad")
        assert event.label and event.description.endswith(".")
    assert re.findall(r"\{([\w.]+)\}", event_words()["retry"]["label"]) == ["attempt"]


@pytest.mark.parametrize(("seconds", "label"), [(3600, "1 h"), (7200, "2 h"), (900, "15 min"),
                                                (86400, "1 day"), (172800, "2 days"), (45, "45 s")])
def test_the_ttl_reads_as_a_person_says_it(seconds: int, label: str) -> None:
    assert ttl_label(seconds) == label
