"""The heartbeat's ``upstreams``: what a real sidecar's balancer says about each instance it calls.

Real sidecars on loopback with scripted upstreams and the real balancer, outlier detector
and circuit breaker; the report is read where the control client reads it
(``Sidecar.heartbeat_state``), docs/control-channel.md.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

from meshui.registry.frames import MAX_FRAME_BYTES
from proxies.mesh.endpoints import Endpoint, ServiceEndpoints
from proxies.mesh.schema import HEARTBEAT_EJECTIONS_MAX, HEARTBEAT_ENDPOINTS_MAX
from proxies.policy.schema import ServicePolicy
from proxies.traffic.destination import Destination
from proxies.traffic.report import UpstreamReport
from tests.clock import FakeClock
from tests.proxies.conftest import until
from tests.proxies.test_policy_dataplane import ROUND_ROBIN, get, instances, start, upstream


def endpoints_of(state: dict[str, Any], service: str = "catalog") -> dict[str, dict[str, Any]]:
    (entry,) = [u for u in state["upstreams"] if u["service"] == service]
    return {e["instance"]: e for e in entry["endpoints"]}


async def test_the_heartbeat_reports_the_split_of_the_requests_since_the_last_one(servers, telemetry):
    a, b, unused = await upstream(servers), await upstream(servers), await upstream(servers)
    services = {"catalog": instances(a.port, b.port), "reviews": instances(unused.port)}
    sidecar = await start(telemetry, services, {"default": ROUND_ROBIN})
    try:
        for _ in range(10):
            status, _, _ = await get(sidecar.ports["outbound"])
            assert status.startswith(b"HTTP/1.1 200")
        first = sidecar.heartbeat_state()
        # Only what it calls: the sidecar knows the whole mesh (reviews), reports catalog.
        assert [u["service"] for u in first["upstreams"]] == ["catalog"]
        assert first["upstreams_truncated"] == 0 and first["upstreams_interval_s"] is None
        report = endpoints_of(first)
        assert sorted(report) == sorted([f"i{a.port}", f"i{b.port}"])
        for instance in report.values():
            assert (instance["requests"], instance["requests_total"]) == (5, 5)
            assert instance["outstanding"] == 0 and instance["overflow"] == 0
            assert instance["ejected"] is False and instance["until"] is None
            assert 0 < instance["ewma_ms"] <= 30.0  # starts at 30 ms, loopback answers are faster
        assert first["upstreams"][0]["overflow"] == {
            "max_connections": 0, "max_pending_requests": 0, "max_requests": 0, "max_retries": 0}

        for _ in range(4):
            await get(sidecar.ports["outbound"])
        second = sidecar.heartbeat_state()
        assert second["upstreams_interval_s"] >= 0
        assert [(e["requests"], e["requests_total"]) for e in endpoints_of(second).values()] == [
            (2, 7), (2, 7)]
        third = endpoints_of(sidecar.heartbeat_state())
        assert [e["requests"] for e in third.values()] == [0, 0]  # nothing since the last one
    finally:
        await sidecar.stop()


async def test_an_ejected_instance_is_reported_first_with_its_end_in_epoch_seconds(servers, telemetry):
    failing, live = await upstream(servers, 500), await upstream(servers)
    clock = FakeClock()
    sidecar = await start(telemetry, {"catalog": instances(failing.port, live.port)},
                          {"default": ROUND_ROBIN}, clock)
    try:
        for _ in range(10):
            await get(sidecar.ports["outbound"])
        assert failing.hits == 5  # the fifth 500 ejected it (Envoy's default)
        before = time.time()
        state = sidecar.heartbeat_state()
        endpoints = state["upstreams"][0]["endpoints"]
        ejected = endpoints_of(state)[f"i{failing.port}"]
        assert ejected["ejected"] is True
        assert before + 29 <= ejected["until"] <= time.time() + 31  # base ejection time 30 s
        assert endpoints_of(state)[f"i{live.port}"]["ejected"] is False
        # The same instance as the existing ejected list reports, until the same time.
        (listed,) = state["ejected"]
        assert (listed["instance"], listed["until"]) == (ejected["instance"], ejected["until"])
        # Reported in name order within a service; the cap keeps the ejected one first.
        assert [e["instance"] for e in endpoints] == sorted(e["instance"] for e in endpoints)
        sidecar.upstream_report.limit = 1
        capped = sidecar.heartbeat_state()
        assert list(endpoints_of(capped)) == [f"i{failing.port}"]
        assert capped["upstreams_truncated"] == 1
    finally:
        await sidecar.stop()


async def test_requests_in_flight_and_pool_overflow_are_reported_per_instance(servers, telemetry):
    silent = await upstream(servers, None)
    policy = {"default": {"circuit_breaker": {"max_connections": 1}}}
    sidecar = await start(telemetry, {"catalog": instances(silent.port)}, policy)
    try:
        out = sidecar.ports["outbound"]
        _, held = await asyncio.open_connection("127.0.0.1", out)
        held.write(b"GET http://catalog/ HTTP/1.1\r\n\r\n")
        await until(lambda: silent.hits == 1)
        status, headers, _ = await get(out)
        assert headers[b"x-meshui-overflow"] == b"max_connections"
        state = sidecar.heartbeat_state()
        report = endpoints_of(state)[f"i{silent.port}"]
        assert report["outstanding"] == 1  # the held request
        assert report["overflow"] == 1 and report["requests_total"] == 0
        assert state["upstreams"][0]["overflow"]["max_connections"] == 1
        held.close()
    finally:
        await sidecar.stop()


def test_a_heartbeat_with_every_list_full_and_every_name_at_its_longest_fits_meshui_s_frame_limit() -> None:
    """The caps are what bound the frame: 64 ejections and 64 instances of 64 services, every
    service name 63 characters, every proxy id 200, every count at its largest."""
    clock = FakeClock()
    destinations = []
    for n in range(HEARTBEAT_ENDPOINTS_MAX):
        service = f"{n:02d}" + "s" * 61
        endpoint = Endpoint(service, f"{n:03d}" + "i" * 197, "v" * 63, "h" * 200, 65535)
        endpoint.requests_total = endpoint.overflows = 2**63 - 1
        endpoint.outstanding = 2**31 - 1
        endpoint.ewma_s, endpoint.ewma_stamp = 1e7, clock.now
        endpoint.ejected_until = clock.now + 300
        destination = Destination(ServiceEndpoints(service, (endpoint,)), ServicePolicy(), None,
                                  clock, random.Random(1))
        destination.breaker.overflow = dict.fromkeys(destination.breaker.overflow, 2**63 - 1)
        destinations.append(destination)
    upstreams = UpstreamReport().take(destinations, clock.now, 1e10)
    assert len([e for u in upstreams["upstreams"] for e in u["endpoints"]]) == HEARTBEAT_ENDPOINTS_MAX
    state = {
        "endpoints_version": 2**63 - 1, "config_revision": 2**63 - 1, "requests_total": 2**63 - 1,
        "telemetry_dropped": 2**63 - 1, "uptime_s": 1e12,
        "ejected": [{"service": "s" * 63, "instance": "i" * 200, "until": 1e10 + 0.1}
                    for _ in range(HEARTBEAT_EJECTIONS_MAX)],
        **upstreams, "upstreams_interval_s": 1e9,
    }
    frame = json.dumps({"type": "heartbeat", "state": state})  # as the control client sends it
    assert len(frame.encode()) <= MAX_FRAME_BYTES, len(frame.encode())
