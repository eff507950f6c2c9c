"""The graph page takes its health scale, legend and window from the server: one definition
(meshui.dashboard.health, collector.graphstore.DEFAULT_WINDOW), no copy in graph.js."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import Client

from collector.graphstore import DEFAULT_WINDOW
from collector.graphwriter import GraphWriter
from meshui.dashboard import views
from meshui.dashboard.health import AMBER, GREEN, HEALTH, RED, HealthLevel, HealthScale, scale

pytestmark = pytest.mark.django_db

GRAPH_JS = (Path(__file__).resolve().parents[2] / "static" / "dashboard" / "graph.js").read_text()


def json_script(page: str, element_id: str) -> Any:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', page, re.S)
    assert match, element_id
    return json.loads(match.group(1))


def legend(page: str) -> list[tuple[str, str]]:
    block = re.search(r'<ul class="legend".*?</ul>', page, re.S)
    assert block
    return [(name, html.unescape(label)) for name, label in
            re.findall(r'<li><i class="dot (\w+)"></i>([^<]*)</li>', block.group())]


def write_edge(redis_client: redis.Redis, requests: int, errors: int) -> None:
    writer = GraphWriter(clock=lambda: time.time() - 1)
    writer.add_edge("web", "api", requests, errors, {3: requests})
    pipe = redis_client.pipeline(transaction=False)
    GraphWriter.queue_writes(pipe, writer.take())
    pipe.execute()


@pytest.fixture
def reader(meshui_settings: Any) -> Client:
    meshui_settings.MESHUI_PUBLIC_READ = True
    return Client()


def test_the_default_scale_is_one_two_and_five_percent_as_the_legend_says() -> None:
    assert [item["label"] for item in HEALTH.legend()] == ["< 1% errors", "< 5%", "≥ 5%", "idle"]
    assert HEALTH.page_json() == {"levels": [{"name": "ok", "below": 0.01},
                                             {"name": "warn", "below": 0.05},
                                             {"name": "bad", "below": None}], "idle": "idle"}
    assert [item["label"] for item in scale(0.025, 0.1).legend()] == [
        "< 2.5% errors", "< 10%", "≥ 10%", "idle"]


@pytest.mark.parametrize("levels", [
    (HealthLevel("ok", GREEN, 0.05), HealthLevel("warn", AMBER, 0.01), HealthLevel("bad", RED)),
    (HealthLevel("ok", GREEN, 0.01), HealthLevel("bad", RED, 0.05)),
    (HealthLevel("ok", GREEN), HealthLevel("bad", RED)),
    (),
])
def test_a_scale_whose_thresholds_do_not_rise_to_any_rate_is_refused(
    levels: tuple[HealthLevel, ...],
) -> None:
    with pytest.raises(ValueError, match="must rise"):
        HealthScale(levels, HEALTH.idle)


def test_the_page_hands_graph_js_the_server_s_scale_and_window(
    reader: Client, redis_client: redis.Redis
) -> None:
    write_edge(redis_client, 100, 3)
    page = reader.get("/").content.decode()
    assert json_script(page, "graph-page") == {
        "health": HEALTH.page_json(), "window": DEFAULT_WINDOW, "window_label": "last minute",
        "view": {"instances": False, "expand": []},
        "alerts": {"can_edit": False, "poll_ms": 3000, "firing": ["Firing", "Recovering"],
                   "pending": ["Pending"], "colors": {"firing": RED, "pending": AMBER}}}
    assert legend(page) == [(item["name"], item["label"]) for item in HEALTH.legend()]
    assert '<span class="value">last minute</span>' in page
    initial = json_script(page, "graph-initial")
    assert initial["graph"]["window"] == DEFAULT_WINDOW
    assert initial["figure"]["layout"]["annotations"][0]["arrowcolor"] == AMBER  # 3% errors


def test_another_scale_on_the_server_changes_the_legend_the_colours_and_what_graph_js_gets(
    reader: Client, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    lenient = scale(0.1, 0.2)
    monkeypatch.setattr(views, "HEALTH", lenient)
    write_edge(redis_client, 100, 3)
    page = reader.get("/").content.decode()
    assert legend(page) == [("ok", "< 10% errors"), ("warn", "< 20%"), ("bad", "≥ 20%"), ("idle", "idle")]
    assert json_script(page, "graph-page")["health"] == lenient.page_json()
    initial = json_script(page, "graph-initial")
    assert initial["figure"]["layout"]["annotations"][0]["arrowcolor"] == GREEN  # 3% < 10%


def test_graph_js_has_no_threshold_or_window_of_its_own() -> None:
    health = re.search(r"function health\(.*?\n  }\n", GRAPH_JS, re.S)
    assert health, "graph.js lost its health(requests, errorRate)"
    assert not re.search(r"\d", health.group()), health.group()
    for level in HEALTH.levels:
        if level.below is not None:
            assert not re.search(rf"(?<![\d.]){re.escape(repr(level.below))}(?!\d)", GRAPH_JS)
    assert not re.search(rf"\b{DEFAULT_WINDOW}\b|last minute", GRAPH_JS)


def write_instances(redis_client: redis.Redis) -> None:
    writer = GraphWriter(clock=lambda: time.time() - 1)
    writer.add_edge("web", "api", 30, 0, {3: 30})
    writer.add_node("api", "v1", 20, 0, {3: 20}, instance="api-1")
    writer.add_node("api", "v1", 10, 0, {3: 10}, instance="api-2")
    pipe = redis_client.pipeline(transaction=False)
    GraphWriter.queue_writes(pipe, writer.take())
    pipe.execute()


def test_the_page_draws_its_first_frame_at_the_instance_level_its_url_asks_for(
    reader: Client, redis_client: redis.Redis
) -> None:
    write_instances(redis_client)
    page = reader.get("/", {"level": "instance"}).content.decode()
    assert json_script(page, "graph-page")["view"] == {"instances": True, "expand": []}
    initial = json_script(page, "graph-initial")
    assert initial["expanded"] == ["api"]  # web served nothing: it has no instances to show
    (instances,) = [t for t in initial["figure"]["data"] if t["name"] == "instances"]
    assert [c[0] for c in instances["customdata"]] == ["api-1", "api-2"]
    # One service by name; a name the sidecars would refuse is left out, not an error.
    page = reader.get("/", {"expand": "api,Not!A,web"}).content.decode()
    assert json_script(page, "graph-page")["view"] == {"instances": False, "expand": ["api", "web"]}
    assert json_script(page, "graph-initial")["expanded"] == ["api"]
    plain = json_script(reader.get("/").content.decode(), "graph-initial")
    assert "expanded" not in plain
    assert not [t for t in plain["figure"]["data"] if t["name"] == "instances"]
