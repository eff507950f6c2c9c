"""What the sidecars eject, from their heartbeats to GET /api/v1/ejections."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from meshui.registry.ejections import current
from meshui.registry.frames import Ejected, Heartbeat, parse_frame
from meshui.registry.models import Instance
from proxies.mesh.schema import HEARTBEAT_EJECTIONS_MAX
from tests.meshui.test_control_channel import hello, receive, register, sidecar
from tests.polling import eventually

NOW = 1_800_000_000.0


def heartbeat(ejected: Any) -> Heartbeat:
    frame = parse_frame(json.dumps({"type": "heartbeat", "state": {"ejected": ejected}}))
    assert isinstance(frame, Heartbeat)
    return frame


def test_a_heartbeat_reports_what_its_sidecar_ejects() -> None:
    frame = heartbeat([{"service": "catalog", "instance": "catalog-2", "until": NOW + 30}])
    assert frame.ejected == (Ejected("catalog", "catalog-2", NOW + 30),)
    assert frame.ejected_problem is None
    assert heartbeat([]).ejected == ()
    assert parse_frame('{"type": "heartbeat", "state": {}}').ejected == ()  # type: ignore[union-attr]


@pytest.mark.parametrize(("ejected", "problem"), [
    ("catalog-2", "must be a list"),
    ([{"service": "Catalog!", "instance": "catalog-2", "until": NOW}], "[0].service must be"),
    ([{"service": "catalog", "instance": "<script>", "until": NOW}], "[0].instance must be"),
    ([{"service": "catalog", "instance": "catalog-2", "until": "soon"}], "[0].until must be"),
    ([{"service": "catalog", "instance": "catalog-2", "until": True}], "[0].until must be"),
    ([{"service": "catalog", "instance": f"c-{n}", "until": NOW}
      for n in range(HEARTBEAT_EJECTIONS_MAX + 1)], "at most 64"),
])
def test_a_report_meshui_cannot_read_is_named_and_the_heartbeat_still_counts(
    ejected: Any, problem: str
) -> None:
    frame = heartbeat(ejected)
    assert frame.ejected == ()
    assert frame.ejected_problem is not None and problem in frame.ejected_problem


def test_ejections_are_merged_per_instance_and_end_at_their_time() -> None:
    reports = {
        b"frontend-1": json.dumps([{"service": "catalog", "instance": "catalog-2", "until": NOW + 10},
                                   {"service": "reviews", "instance": "reviews-1", "until": NOW + 5}]),
        b"checkout-1": json.dumps([{"service": "catalog", "instance": "catalog-2", "until": NOW + 40},
                                   {"service": "catalog", "instance": "catalog-3", "until": NOW - 1}]),
    }
    assert current(reports, "catalog", NOW) == [
        {"service": "catalog", "instance": "catalog-2", "until": NOW + 40,
         "ejected_by": ["checkout-1", "frontend-1"]}]
    assert [r["instance"] for r in current(reports, None, NOW)] == ["catalog-2", "reviews-1"]
    assert current(reports, None, NOW + 41) == []


def ejections(service: str = "catalog") -> list[dict[str, Any]]:
    return Client().get("/api/v1/ejections", {"service": service}).json()["ejections"]


@pytest.mark.django_db(transaction=True)
async def test_the_api_shows_a_sidecars_report_until_it_disconnects(meshui_settings: Any) -> None:
    meshui_settings.MESHUI_PUBLIC_READ = True
    caller = sidecar("frontend")
    await register(caller, hello("frontend-1", "frontend"))
    until = time.time() + 30
    await caller.send_json_to({"type": "heartbeat", "state": {"ejected": [
        {"service": "catalog", "instance": "catalog-2", "until": until}]}})

    async def reported() -> list[dict[str, Any]]:
        return await database_sync_to_async(ejections)()

    (row,) = await eventually(reported, what="the ejection in the API")
    assert row["instance"] == "catalog-2" and row["ejected_by"] == ["frontend-1"]
    assert row["until"].endswith("Z")

    # A report meshui cannot read: an error frame names it; the heartbeat still counted.
    before = (await database_sync_to_async(Instance.objects.get)(proxy_id="frontend-1")).last_seen
    await caller.send_json_to({"type": "heartbeat", "state": {"ejected": "everything"}})
    error = await receive(caller)
    assert error["type"] == "error" and error["field"] == "state.ejected"

    async def touched() -> bool:
        row = await database_sync_to_async(Instance.objects.get)(proxy_id="frontend-1")
        return row.last_seen > before

    await eventually(touched, what="the heartbeat recorded")
    await caller.disconnect()
    await eventually(lambda: _empty(reported), what="the report gone with its sidecar")


async def _empty(read: Any) -> bool:
    return await read() == []
