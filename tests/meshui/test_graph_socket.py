"""The live graph socket and its throttle."""

from __future__ import annotations

import time
from typing import Any

import pytest
from channels.layers import get_channel_layer
from channels.routing import URLRouter

from meshui.dashboard.throttle import LatestThrottle
from meshui.routing import websocket_urlpatterns
from tests.meshui.websocket import WebsocketCommunicator
from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)

application = URLRouter(websocket_urlpatterns)
BROWSER = [(b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000")]


def graph(requests: int) -> dict[str, Any]:
    return {
        "window": 60, "generated_at": time.time(),
        "nodes": [{"id": name, "service": name, "versions": [], "requests": 0, "errors": 0,
                   "rps": 0.0, "error_rate": 0.0, "p50_ms": None, "p95_ms": None,
                   "p99_ms": None} for name in ("catalog", "frontend")],
        "edges": [{"source": "frontend", "target": "catalog", "requests": requests, "errors": 0,
                   "rps": requests / 60, "error_rate": 0.0, "p50_ms": 1.0, "p95_ms": 2.0,
                   "p99_ms": 3.0}],
    }


async def test_the_socket_sends_the_current_graph_then_forwards_updates(
    meshui_settings: Any
) -> None:
    meshui_settings.MESHUI_PUBLIC_READ = True
    browser = WebsocketCommunicator(application, "/ws/graph", headers=BROWSER)
    connected, _ = await browser.connect()
    assert connected
    first = await browser.receive_json_from()
    assert first["type"] == "graph"
    assert first["graph"]["nodes"] == [] and first["summary"]["services"] == 0

    await get_channel_layer().group_send("graph", {"type": "graph.update", "graph": graph(42)})
    update = await browser.receive_json_from()
    assert update["graph"]["edges"][0]["requests"] == 42
    assert update["summary"] == {"services": 2, "edges": 1, "rps": 0.7, "error_rate": 0.0,
                                 "generated_at": update["graph"]["generated_at"],
                                 "hidden": {"nodes": 0, "edges": 0}}
    assert update["graph"]["hidden"] == {"nodes": 0, "edges": 0}  # added when missing
    assert update["figure"]["data"][0]["customdata"] == ["frontend->catalog"]
    await browser.disconnect()


async def test_the_socket_refuses_anonymous_readers_without_public_read(
    meshui_settings: Any
) -> None:
    browser = WebsocketCommunicator(application, "/ws/graph", headers=BROWSER)
    connected, _ = await browser.connect()
    assert not connected


async def test_the_socket_refuses_a_foreign_origin(meshui_settings: Any) -> None:
    meshui_settings.MESHUI_PUBLIC_READ = True
    browser = WebsocketCommunicator(
        application, "/ws/graph", headers=[(b"origin", b"https://evil.example")])
    connected, _ = await browser.connect()
    assert not connected


async def test_the_throttle_sends_at_once_then_only_the_newest_of_a_burst() -> None:
    sent: list[int] = []

    async def send(item: int) -> None:
        sent.append(item)

    throttle: LatestThrottle[int] = LatestThrottle(send, interval=0.1)
    for item in range(5):
        await throttle.submit(item)
    assert sent == [0]
    await eventually(lambda: len(sent) >= 2, timeout=2)
    assert sent == [0, 4]
    throttle.close()


async def test_the_throttle_never_sends_faster_than_its_interval() -> None:
    clock = [100.0]
    sent: list[int] = []

    async def send(item: int) -> None:
        sent.append(item)

    throttle: LatestThrottle[int] = LatestThrottle(send, interval=0.5, clock=lambda: clock[0])
    await throttle.submit(1)
    clock[0] += 0.6
    await throttle.submit(2)
    assert sent == [1, 2]
    clock[0] += 0.1
    await throttle.submit(3)
    assert sent == [1, 2]  # held back: only 0.1 s since the last send
    throttle.close()


async def test_a_view_message_switches_the_socket_to_the_instance_level_and_back(
    meshui_settings: Any, redis_client: Any
) -> None:
    from collector.graphwriter import GraphWriter

    meshui_settings.MESHUI_PUBLIC_READ = True
    writer = GraphWriter(clock=lambda: time.time() - 1)
    writer.add_edge("frontend", "catalog", 30, 0, {3: 30})
    writer.add_node("catalog", "v1", 30, 0, {3: 30}, instance="catalog-1")
    pipe = redis_client.pipeline(transaction=False)
    GraphWriter.queue_writes(pipe, writer.take())
    pipe.execute()
    browser = WebsocketCommunicator(application, "/ws/graph", headers=BROWSER)
    connected, _ = await browser.connect()
    assert connected
    first = await browser.receive_json_from()
    assert "expanded" not in first and "instances" not in first["graph"]["nodes"][0]

    await browser.send_json_to({"type": "view", "instances": False, "expand": ["catalog"]})
    expanded = await browser.receive_json_from(timeout=5)
    assert expanded["expanded"] == ["catalog"]
    catalog = next(n for n in expanded["graph"]["nodes"] if n["id"] == "catalog")
    assert [i["instance"] for i in catalog["instances"]] == ["catalog-1"]
    assert any(t["name"] == "instances" for t in expanded["figure"]["data"])
    # Every update from then on is drawn that way (read afresh at the instance level).
    await get_channel_layer().group_send("graph", {"type": "graph.update", "graph": graph(42)})
    update = await browser.receive_json_from(timeout=5)
    assert update["expanded"] == ["catalog"]

    for bad, words in (({"type": "view", "expand": ["Not A Name"]}, "lower-case DNS label"),
                       ({"type": "view", "instances": "yes"}, "true or false"),
                       ({"type": "zoom"}, "expected")):
        await browser.send_json_to(bad)
        error = await browser.receive_json_from(timeout=5)
        assert error["type"] == "error" and words in error["detail"], error
    await browser.send_to(text_data="x" * 20000)
    assert "at most" in (await browser.receive_json_from(timeout=5))["detail"]

    await browser.send_json_to({"type": "view"})  # back to the service level
    plain = await browser.receive_json_from(timeout=5)
    assert "expanded" not in plain and "instances" not in plain["graph"]["nodes"][0]
    await browser.disconnect()
