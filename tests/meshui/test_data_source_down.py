"""Redis stops and starts again: the API answers 503 + Retry-After, the socket says so, and
both recover by themselves within 5 s (issue 6). A private Valkey, really stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from django.test import Client

from meshui.redis_clients import RETRY_AFTER
from meshui.routing import websocket_urlpatterns
from tests.meshui.conftest import StoppableRedis
from tests.meshui.test_graph_socket import BROWSER, graph
from tests.meshui.websocket import WebsocketCommunicator
from tests.polling import eventually, first_matching

application = URLRouter(websocket_urlpatterns)
RECOVERY = 5.0  # the bound: back within 5 s of Redis returning


async def next_frame_where(
    browser: WebsocketCommunicator, wanted: Callable[[dict[str, Any]], Any]
) -> dict[str, Any]:
    """The first frame ``wanted`` accepts, within RECOVERY seconds; never a ``down`` status."""

    def accepted(frame: dict[str, Any]) -> Any:
        assert frame.get("source") != "down", frame
        return wanted(frame)

    return await first_matching(lambda seconds: browser.receive_json_from(timeout=seconds),
                                accepted, RECOVERY)


@pytest.mark.django_db
def test_the_graph_api_is_503_with_retry_after_while_redis_is_down_then_200(
    outage_settings: Any, stoppable_redis: StoppableRedis
) -> None:
    outage_settings.MESHUI_PUBLIC_READ = True  # no session: the poll below runs off-thread
    client = Client()
    assert client.get("/api/v1/graph").status_code == 200

    stoppable_redis.stop()
    response = client.get("/api/v1/graph")
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER)
    body = response.json()
    assert body["error"] == "data_source_unavailable"
    assert "Redis" in body["detail"]

    stoppable_redis.start()

    async def answers() -> int | None:
        status = (await sync_to_async(client.get)("/api/v1/graph")).status_code
        return status if status == 200 else None

    assert asyncio.run(eventually(answers, timeout=RECOVERY, interval=0.1)) == 200


@pytest.mark.django_db
def test_the_instances_endpoint_is_503_too_while_redis_is_down(
    outage_settings: Any, stoppable_redis: StoppableRedis
) -> None:
    outage_settings.MESHUI_PUBLIC_READ = True
    assert Client().get("/api/v1/instances").status_code == 200
    stoppable_redis.stop()
    response = Client().get("/api/v1/instances")
    assert response.status_code == 503 and response["Retry-After"] == str(RETRY_AFTER)
    assert response.json()["error"] == "data_source_unavailable"
    assert Client().get("/api/v1/services").status_code == 200  # the database only


@pytest.mark.django_db(transaction=True)
async def test_the_socket_says_the_source_is_down_keeps_open_and_resumes_when_it_is_back(
    outage_settings: Any, stoppable_redis: StoppableRedis
) -> None:
    outage_settings.MESHUI_PUBLIC_READ = True
    browser = WebsocketCommunicator(application, "/ws/graph", headers=BROWSER)
    connected, _ = await browser.connect()
    assert connected
    assert (await browser.receive_json_from())["type"] == "graph"

    stoppable_redis.stop()
    down = await browser.receive_json_from(timeout=RECOVERY)
    assert down == {"type": "status", "source": "down", "retry_after": RETRY_AFTER,
                    "detail": down["detail"]}
    assert "Redis" in down["detail"]

    stoppable_redis.start()
    up = await browser.receive_json_from(timeout=RECOVERY)
    assert up == {"type": "status", "source": "up"}
    fresh = await browser.receive_json_from(timeout=RECOVERY)
    assert fresh["type"] == "graph" and fresh["graph"]["hidden"] == {"nodes": 0, "edges": 0}

    # The restarted Redis forgot the group; the socket joined it again and gets updates.
    await get_channel_layer().group_send("graph", {"type": "graph.update", "graph": graph(7)})
    # (A pooled connection to the old server may first fail once more: the socket then checks
    # Redis, finds it up and sends the graph again; frames before the update are skipped.)
    update = await next_frame_where(
        browser, lambda f: f.get("type") == "graph" and f["graph"]["edges"])
    assert update["graph"]["edges"][0]["requests"] == 7
    await browser.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_socket_opened_while_redis_is_down_is_told_so_then_gets_the_graph(
    outage_settings: Any, stoppable_redis: StoppableRedis
) -> None:
    outage_settings.MESHUI_PUBLIC_READ = True
    stoppable_redis.stop()
    browser = WebsocketCommunicator(application, "/ws/graph", headers=BROWSER)
    connected, _ = await browser.connect()
    assert connected
    first = await browser.receive_json_from(timeout=RECOVERY)
    assert first["type"] == "status" and first["source"] == "down"

    stoppable_redis.start()
    assert await browser.receive_json_from(timeout=RECOVERY) == {"type": "status", "source": "up"}
    assert (await browser.receive_json_from(timeout=RECOVERY))["type"] == "graph"
    await browser.disconnect()


@pytest.mark.django_db
def test_the_graph_page_renders_with_the_banner_while_redis_is_down(
    outage_settings: Any, stoppable_redis: StoppableRedis
) -> None:
    outage_settings.MESHUI_PUBLIC_READ = True
    up = Client().get("/")
    assert up.status_code == 200 and b'id="source-down" class="banner" role="alert" hidden' in up.content
    stoppable_redis.stop()
    down = Client().get("/")
    assert down.status_code == 200
    assert b'id="source-down" class="banner" role="alert" >' in down.content
    assert b"Data source down." in down.content
