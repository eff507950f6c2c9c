"""The endpoints message: only rows the sidecar accepts, never larger than it accepts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone

from meshui.registry.endpoints import (
    OK,
    TOO_LARGE,
    build_endpoints,
    endpoints_status,
    publish_endpoints,
)
from meshui.registry.models import Instance, Service
from proxies.mesh.endpoints import EndpointRegistry
from proxies.mesh.schema import CONTROL_FRAME_MAX_BYTES, ENDPOINTS_MAX_BYTES
from tests.meshui.test_control_channel import hello, receive, receive_until, register, sidecar
from tests.polling import eventually


def test_meshui_s_bound_stays_below_the_sidecar_s_frame_limit() -> None:
    assert ENDPOINTS_MAX_BYTES < CONTROL_FRAME_MAX_BYTES


def test_a_message_within_the_bound_is_one_the_sidecar_applies() -> None:
    rows = [("catalog", f"catalog-{i}", "v1", f"10.0.0.{i}:15001") for i in range(1, 50)]
    build = build_endpoints(7, rows, ENDPOINTS_MAX_BYTES)
    assert build.frame is not None and build.size == len(build.frame)
    message = json.loads(build.frame)
    registry = EndpointRegistry()
    snapshot = registry.apply(message["version"], message["services"])
    assert len(snapshot.services["catalog"].endpoints) == 49


def test_a_message_past_the_bound_is_not_built() -> None:
    rows = [("catalog", f"catalog-{i}", "v1", "10.0.0.1:15001") for i in range(40)]
    build = build_endpoints(1, rows, 1024)
    assert build.frame is None and build.size > 1024 and build.instances == 40


def test_rows_the_sidecar_would_refuse_are_left_out_and_named() -> None:
    rows = [("catalog", "good-1", "v1", "10.0.0.1:1"), ("Evil:Name", "evil-1", "v1", "h:1"),
            ("catalog", "huge-1", "v1", "a" * 1_200_000 + ":1")]
    build = build_endpoints(1, rows, ENDPOINTS_MAX_BYTES)
    assert build.skipped == ("evil-1", "huge-1")
    assert json.loads(build.frame)["services"] == {
        "catalog": [{"instance": "good-1", "version": "v1", "address": "10.0.0.1:1"}]}


@pytest.mark.django_db(transaction=True)
def test_a_bad_row_already_in_the_database_never_reaches_a_sidecar(meshui_settings: Any) -> None:
    now = timezone.now()
    evil = Service.objects.create(name="Evil:Name")
    Instance.objects.create(proxy_id="evil-1", service=evil, address="h:1", connected=True,
                            connected_at=now, last_seen=now)
    publish_endpoints()
    status = endpoints_status()
    assert status["state"] == OK and status["skipped"] == ["evil-1"]
    assert status["instances"] == 0


LONG = "x" * 190  # ~240-byte entries: four do not fit in 1 KiB


@pytest.mark.django_db(transaction=True)
async def test_a_mesh_outgrowing_the_bound_gets_an_error_status_and_no_frame(
    meshui_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    meshui_settings.MESHUI_CONTROL_ENDPOINTS_MAX_BYTES = 1024
    status = database_sync_to_async(endpoints_status)
    sidecars = [sidecar("catalog", client=("10.0.0.7", 7000 + i)) for i in range(5)]
    fits: dict[str, Any] = {}
    for i, communicator in enumerate(sidecars[:3]):
        fits = await register(communicator, hello(f"{LONG}-{i}", "catalog", port=9001 + i))
    assert (await status())["state"] == OK

    # Two more do not fit: they are welcomed, but no endpoints frame goes to anybody.
    for i in (3, 4):
        await sidecars[i].connect()
        await sidecars[i].send_json_to(hello(f"{LONG}-{i}", "catalog", port=9001 + i))
        assert (await receive(sidecars[i]))["type"] == "welcome"
        await _until_status(status, TOO_LARGE, instances=i + 1)
    too_large = await status()
    assert too_large["limit"] == 1024 and too_large["bytes"] > 1024
    assert too_large["instances"] == 5
    assert "larger than 1024 bytes" in too_large["reason"]
    assert "larger than 1024 bytes" in caplog.text
    meshui_settings.MESHUI_PUBLIC_READ = True  # and the instance list shows it
    listing = await database_sync_to_async(lambda: Client().get("/api/v1/instances").json())()
    assert listing["endpoints_status"]["state"] == TOO_LARGE

    # Back under the bound: the next push goes out again, with the whole set.
    await sidecars[4].disconnect()
    await sidecars[3].disconnect()
    await _until_status(status, OK, instances=3)
    sizes: list[int] = []

    def endpoints_after_shrink(frame: dict[str, Any]) -> bool:
        if frame["type"] == "endpoints":
            sizes.append(len(json.dumps(frame, separators=(",", ":"))))
        return frame["type"] == "endpoints" and len(frame["services"]["catalog"]) == 3 \
            and frame["version"] > fits["version"]

    update = await receive_until(sidecars[0], endpoints_after_shrink)
    assert update["version"] == (await status())["version"]
    assert max(sizes) <= 1024  # no frame past the bound was ever sent
    for communicator in sidecars[:3]:
        await communicator.disconnect()


async def _until_status(status: Any, state: str, instances: int) -> None:
    async def reached() -> bool:
        current = await status()
        return current is not None and (current["state"], current["instances"]) == (
            state, instances)

    await eventually(reached, timeout=5, interval=0.02)
