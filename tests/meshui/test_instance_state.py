"""The instance level: heartbeat state validated at the edge, kept, and shown by the API.

Pure parts first (the validator, the merge of callers' reports), then the real Channels
consumer over a real Redis feeding GET /api/v1/instances/{proxy_id}/state,
GET /api/v1/instances?service= and GET /api/v1/graph?level=instance.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

import pytest
import redis
from channels.db import database_sync_to_async
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from collector.graphwriter import GraphWriter
from meshui.registry.frames import Heartbeat, parse_frame
from meshui.registry.heartbeats import ReportProblem, StateReport, parse_state
from meshui.registry.instance_views import CallerEntry, caller_rows, instance_loads
from proxies.mesh.schema import HEARTBEAT_ENDPOINTS_MAX
from proxies.telemetry import histogram
from tests.fuzzing import examples, outcome
from tests.meshui.test_control_channel import hello, receive_until, register, sidecar
from tests.meshui.users import make_user
from tests.polling import eventually

NOW = 1_800_000_000.0


def endpoint(instance: str, requests: int = 0, **changes: Any) -> dict[str, Any]:
    """One instance of a heartbeat's ``upstreams`` as the sidecar sends it."""
    return {"instance": instance, "requests": requests, "requests_total": requests * 10,
            "ewma_ms": 5.0, "outstanding": 0, "ejected": False, "until": None, "overflow": 0,
            **changes}


def upstream(service: str, *endpoints: dict[str, Any]) -> dict[str, Any]:
    return {"service": service, "overflow": {"max_connections": 0, "max_pending_requests": 0,
                                              "max_requests": 0, "max_retries": 0},
            "endpoints": list(endpoints)}


def state(*upstreams: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {"endpoints_version": 3, "config_revision": 7, "requests_total": 120,
            "telemetry_dropped": 0, "uptime_s": 42.5, "ejected": [],
            "upstreams": list(upstreams), "upstreams_truncated": 0,
            "upstreams_interval_s": 5.0, **changes}


# The validator ---------------------------------------------------------------------------------


def test_a_heartbeat_state_is_read_into_a_report() -> None:
    report = parse_state(state(upstream("catalog", endpoint("catalog-1", 30),
                                        endpoint("catalog-2", ejected=True, until=NOW))))
    assert (report.uptime_s, report.requests_total, report.config_revision) == (42.5, 120, 7)
    (catalog,) = report.upstreams
    assert catalog.service == "catalog" and dict(catalog.overflow)["max_requests"] == 0
    assert [(e.instance, e.requests, e.ejected, e.until) for e in catalog.endpoints] == [
        ("catalog-1", 30, False, None), ("catalog-2", 0, True, NOW)]
    # What a sidecar from before the upstreams (or fake_sidecars.py) sends is still a report.
    assert parse_state({}) == StateReport()
    assert parse_state({"ejected": []}).upstreams == ()


def too_many() -> dict[str, Any]:
    return state(upstream("catalog", *(endpoint(f"c-{n}") for n in range(HEARTBEAT_ENDPOINTS_MAX + 1))))


@pytest.mark.parametrize(("bad", "field", "words"), [
    (state(upstreams="catalog"), "state.upstreams", "must be a list"),
    (state(upstream("Catalog!", endpoint("c-1"))), "state.upstreams[0].service", "DNS label"),
    (state(upstream("catalog", endpoint("<script>"))), "state.upstreams[0].endpoints[0].instance",
     "must be letters"),
    (state(upstream("catalog", endpoint("c-1", requests=-1))),
     "state.upstreams[0].endpoints[0].requests", "integer"),
    (state(upstream("catalog", endpoint("c-1", outstanding=True))),
     "state.upstreams[0].endpoints[0].outstanding", "integer"),
    (state(upstream("catalog", endpoint("c-1", ewma_ms=math.nan))),
     "state.upstreams[0].endpoints[0].ewma_ms", "number"),
    (state(upstream("catalog", endpoint("c-1", ewma_ms="fast"))),
     "state.upstreams[0].endpoints[0].ewma_ms", "number"),
    (state(upstream("catalog", endpoint("c-1", ejected="yes"))),
     "state.upstreams[0].endpoints[0].ejected", "true or false"),
    (state(upstream("catalog", endpoint("c-1", ejected=True))),
     "state.upstreams[0].endpoints[0].until", "epoch seconds"),
    (state(upstream("catalog", endpoint("c-1"), endpoint("c-1"))),
     "state.upstreams[0].endpoints[1].instance", "listed twice"),
    (state(upstream("catalog", endpoint("c-1")), upstream("catalog", endpoint("c-2"))),
     "state.upstreams", "twice"),
    (too_many(), "state.upstreams[0].endpoints", f"more than {HEARTBEAT_ENDPOINTS_MAX}"),
    (state(upstream("catalog", endpoint("c-1")) | {"overflow": {"max_requests": -2}}),
     "state.upstreams[0].overflow.max_requests", "integer"),
    (state(uptime_s="long"), "state.uptime_s", "number"),
    (state(requests_total=2**64), "state.requests_total", "integer"),
])
def test_a_state_meshui_cannot_read_names_the_value_at_fault(bad: Any, field: str, words: str) -> None:
    with pytest.raises(ReportProblem) as caught:
        parse_state(bad)
    assert caught.value.field == field and words in str(caught.value)
    # As a frame: an error naming the field; the heartbeat and its ejections still count.
    frame = parse_frame(json.dumps({"type": "heartbeat", "state": {
        **bad, "ejected": [{"service": "catalog", "instance": "c-9", "until": NOW}]}}))
    assert isinstance(frame, Heartbeat) and frame.report is None
    assert frame.report_problem is not None and frame.report_problem.field == field
    assert frame.report_problem.as_frame()["code"] == "bad_field"
    assert [e.instance for e in frame.ejected] == ["c-9"]


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
KEYS = st.sampled_from(["instance", "requests", "requests_total", "ewma_ms", "outstanding",
                        "ejected", "until", "overflow", "service", "endpoints", "upstreams"])


@pytest.mark.fuzz
@examples()
@given(st.dictionaries(KEYS, JSON | st.lists(st.dictionaries(KEYS, JSON | st.lists(
    st.dictionaries(KEYS, JSON, max_size=8), max_size=3), max_size=4), max_size=3), max_size=6))
def test_any_state_is_read_or_refused_naming_a_field(raw: dict[str, Any]) -> None:
    try:
        parse_state(raw)
    except ReportProblem as exc:
        assert exc.field.startswith("state.")
        outcome("heartbeat.state", "refused")
    else:
        outcome("heartbeat.state", "read")


# The merge of callers' reports -------------------------------------------------------------------


def entry(service: str, *endpoints: dict[str, Any], at: float = NOW) -> CallerEntry:
    return {"at": at, "service": service, "interval_s": 5.0, "overflow": {},
            "endpoints": endpoints}  # type: ignore[typeddict-item]


def test_each_instance_gets_its_share_of_each_calling_service_and_the_callers_merged() -> None:
    reports = {
        "frontend-1": entry("frontend", endpoint("catalog-1", 30, ewma_ms=4.0, outstanding=1),
                            endpoint("catalog-2", 10, ewma_ms=8.0)),
        "frontend-2": entry("frontend", endpoint("catalog-1", 10, ewma_ms=4.0),
                            endpoint("catalog-2", 30, ewma_ms=12.0, outstanding=2, overflow=3)),
        "checkout-1": entry("checkout", endpoint("catalog-2", 0, ewma_ms=50.0, ejected=True,
                                                 until=NOW + 20)),
    }
    loads = instance_loads(reports, NOW)
    assert loads["catalog-1"] == {
        "callers": [{"service": "frontend", "share": 0.5, "requests": 40}],
        "ewma_ms": 4.0, "outstanding": 1, "ejected": False, "ejected_until": None, "overflow": 0}
    two = loads["catalog-2"]
    assert two["callers"] == [{"service": "checkout", "share": 0.0, "requests": 0},
                              {"service": "frontend", "share": 0.5, "requests": 40}]
    assert two["ewma_ms"] == 11.0  # weighted by requests: (8*10 + 12*30 + 50*0) / 40
    assert (two["outstanding"], two["overflow"]) == (2, 3)
    assert two["ejected"] is True and two["ejected_until"] == NOW + 20  # checkout keeps it out
    assert instance_loads(reports, NOW + 21)["catalog-2"]["ejected"] is False  # its time is up
    # Per calling sidecar: its own share.
    rows = caller_rows("catalog-2", reports, NOW)
    assert [(r["proxy_id"], r["share"], r["ejected"]) for r in rows] == [
        ("checkout-1", 0.0, True), ("frontend-1", 0.25, False), ("frontend-2", 0.75, False)]


# Through the control channel and the API ---------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


def api(path: str, query: dict[str, Any] | None = None, client: Client | None = None
        ) -> tuple[int, Any]:
    if client is None:
        client = Client()
        client.force_login(make_user(f"viewer-{time.monotonic_ns()}"))
    response = client.get(path, query or {})
    return response.status_code, response.json()


aapi = database_sync_to_async(api)


async def beat(communicator: Any, heartbeat_state: dict[str, Any]) -> None:
    await communicator.send_json_to({"type": "heartbeat", "state": heartbeat_state})


async def mesh() -> dict[str, Any]:
    """catalog-1 and catalog-2, called by frontend-1 (which ejected catalog-2) and checkout-1."""
    sockets = {}
    for proxy_id, service, port in (("catalog-1", "catalog", 9101), ("catalog-2", "catalog", 9102),
                                    ("frontend-1", "frontend", 9201),
                                    ("checkout-1", "checkout", 9301)):
        sockets[proxy_id] = sidecar(service, client=("10.0.0.7", port))
        await register(sockets[proxy_id], hello(proxy_id, service, port=port))
    until = time.time() + 30
    await beat(sockets["frontend-1"], state(upstream(
        "catalog", endpoint("catalog-1", 30, ewma_ms=4.0, outstanding=2),
        endpoint("catalog-2", 0, ewma_ms=90.0, ejected=True, until=until))))
    await beat(sockets["checkout-1"], state(upstream("catalog", endpoint("catalog-1", 5),
                                                     endpoint("catalog-2", 15, overflow=2))))
    await beat(sockets["catalog-1"], state(uptime_s=99.0, requests_total=35))
    return {"sockets": sockets, "until": until}


async def state_of(proxy_id: str) -> dict[str, Any]:
    status, body = await aapi(f"/api/v1/instances/{proxy_id}/state")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


@pytestmark_db
async def test_the_state_endpoint_shows_the_instance_its_callers_and_its_upstreams(
    meshui_settings: Any,
) -> None:
    running = await mesh()

    async def reported() -> dict[str, Any] | None:
        body = await state_of("catalog-1")
        return body if len(body["caller_sidecars"]) == 2 and body["reported_at"] else None

    one = await eventually(reported, what="both callers' reports of catalog-1")
    assert (one["service"], one["address"], one["connected"], one["live"]) == (
        "catalog", "127.0.0.1:9101", True, True)
    assert (one["uptime_s"], one["requests_total"], one["config_revision"]) == (99.0, 35, 7)
    assert one["callers"] == [{"service": "checkout", "share": 0.25, "requests": 5},
                              {"service": "frontend", "share": 1.0, "requests": 30}]
    assert one["outstanding"] == 2 and one["ejected"] is False
    assert [(c["proxy_id"], c["service"], c["share"]) for c in one["caller_sidecars"]] == [
        ("checkout-1", "checkout", 0.25), ("frontend-1", "frontend", 1.0)]

    two = await state_of("catalog-2")
    assert two["ejected"] is True and two["ejected_until"].endswith("Z")
    assert two["overflow"] == 2 and two["reported_at"] is None  # catalog-2 sent no heartbeat
    frontend_view = next(c for c in two["caller_sidecars"] if c["proxy_id"] == "frontend-1")
    assert frontend_view["ejected"] is True and frontend_view["ewma_ms"] == 90.0

    (catalog,) = (await state_of("frontend-1"))["upstreams"]
    assert catalog["service"] == "catalog" and catalog["requests"] == 30
    assert [(e["instance"], e["share"], e["ejected"]) for e in catalog["endpoints"]] == [
        ("catalog-1", 1.0, False), ("catalog-2", 0.0, True)]

    status, listing = await aapi("/api/v1/instances", {"service": "catalog"})
    assert status == 200
    rows = {row["proxy_id"]: row for row in listing["instances"]}
    assert sorted(rows) == ["catalog-1", "catalog-2"]
    assert rows["catalog-2"]["ejected"] is True and rows["catalog-1"]["uptime_s"] == 99.0
    assert rows["catalog-1"]["callers"] == one["callers"]
    assert rows["catalog-1"]["sync"] in ("SYNCED", "PENDING")

    # The caller disconnects: what it reported no longer describes anything live.
    await running["sockets"]["frontend-1"].disconnect()

    async def forgotten() -> bool:
        return [c["proxy_id"] for c in (await state_of("catalog-2"))["caller_sidecars"]] == [
            "checkout-1"]

    await eventually(forgotten, what="frontend-1's report gone with it")
    assert (await state_of("catalog-2"))["ejected"] is False
    for communicator in running["sockets"].values():
        await communicator.disconnect()


@pytestmark_db
async def test_a_bad_state_is_answered_with_its_field_logged_and_the_last_good_one_stays(
    meshui_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="meshui")
    running = await mesh()
    frontend = running["sockets"]["frontend-1"]

    async def good() -> dict[str, Any] | None:
        body = await state_of("frontend-1")
        return body if body["upstreams"] else None

    before = await eventually(good, what="frontend-1's first report")
    await beat(frontend, state(upstream("catalog", endpoint("catalog-1", 3, ewma_ms=-1.0))))
    error = await receive_until(frontend, lambda f: f["type"] == "error")
    assert error == {"type": "error", "code": "bad_field",
                     "field": "state.upstreams[0].endpoints[0].ewma_ms",
                     "reason": error["reason"]}
    assert "must be a number" in error["reason"]
    assert "bad_field from frontend-1: heartbeat: 'state.upstreams[0].endpoints[0].ewma_ms'" in caplog.text
    after = await state_of("frontend-1")
    assert after["reported_at"] == before["reported_at"] and after["upstreams"] == before["upstreams"]
    assert (await state_of("catalog-2"))["ejected"] is True  # still frontend's last good word
    for communicator in running["sockets"].values():
        await communicator.disconnect()


@pytestmark_db
async def test_the_instance_level_graph_carries_the_live_state_and_shows_an_idle_ejected_instance(
    meshui_settings: Any, redis_client: redis.Redis
) -> None:
    now = time.time()
    writer = GraphWriter(clock=lambda: now - 1)
    bucket = histogram.bucket_index(4.0)
    writer.add_edge("frontend", "catalog", 30, 0, {bucket: 30}, version="v1")
    writer.add_node("catalog", "v1", 30, 0, {bucket: 30}, instance="catalog-1")
    pipe = redis_client.pipeline(transaction=False)
    GraphWriter.queue_writes(pipe, writer.take())
    pipe.execute()
    running = await mesh()

    async def graph() -> dict[str, Any] | None:
        status, body = await aapi("/api/v1/graph", {"level": "instance", "window": 30})
        assert status == 200
        catalog = next(node for node in body["nodes"] if node["id"] == "catalog")
        instances = {i["instance"]: i for i in catalog["instances"]}
        return instances if len(instances["catalog-1"]["callers"]) == 2 else None

    instances = await eventually(graph, what="the callers' reports in the graph")
    one, two = instances["catalog-1"], instances["catalog-2"]
    assert one["requests"] == 30 and one["connected"] is True and one["last_seen"] > now - 60
    assert one["callers"] == [{"service": "checkout", "share": 0.25, "requests": 5},
                              {"service": "frontend", "share": 1.0, "requests": 30}]
    assert one["outstanding"] == 2 and one["ejected"] is False and one["ewma_ms"] is not None
    # catalog-2 served nothing in the window (it is ejected), yet it is listed, as out.
    assert two["requests"] == 0 and two["p50_ms"] is None
    assert two["ejected"] is True and two["ejected_until"] == pytest.approx(running["until"], abs=0.2)
    status, flat = await aapi("/api/v1/graph", {"window": 30})
    assert all("instances" not in node for node in flat["nodes"])
    for communicator in running["sockets"].values():
        await communicator.disconnect()


@pytest.mark.django_db
def test_an_unknown_or_malformed_proxy_id_is_named(meshui_settings: Any) -> None:
    status, body = api("/api/v1/instances/catalog-9/state")
    assert (status, body["error"]) == (404, "not_found")
    assert "no instance catalog-9 is registered" in body["detail"]
    status, body = api("/api/v1/instances/-bad-/state")
    assert (status, body["error"], body["parameter"]) == (400, "invalid_parameter", "proxy_id")
    status, body = api("/api/v1/instances", {"service": "Not A Service"})
    assert (status, body["parameter"]) == (400, "service")
    status, body = api("/api/v1/instances", {"service": "nobody"})
    assert (status, body["instances"]) == (200, [])
    assert Client().get("/api/v1/instances/catalog-9/state").status_code == 401
