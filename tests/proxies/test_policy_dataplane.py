"""Traffic policy in the data path, through a real sidecar on loopback with scripted upstreams.

Retries, timeouts, circuit breaking, outlier ejection, faults and rate limits, each proven
with upstreams that answer as scripted and, where time matters, an injected clock.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import orjson

from proxies.config import SidecarConfig
from proxies.dataplane.upstream import ConnectionPool, Connector, UpstreamConnection, open_tcp
from proxies.policy.parser import parse_policy
from proxies.sidecar import Sidecar
from proxies.telemetry import tracecontext
from tests.clock import FakeClock
from tests.ports import free_port
from tests.proxies.conftest import read_response, until


async def start(
    telemetry: Any,
    services: dict[str, Any],
    policy: dict[str, Any],
    clock: Callable[[], float] | None = None,
    trace_sample: float = 0.0,
    app_port: int | None = None,
    connector: Connector = open_tcp,
) -> Sidecar:
    config = SidecarConfig(
        service="frontend",
        version="v1",
        app=("127.0.0.1", app_port or free_port()),
        inbound=("127.0.0.1", 0),
        outbound=("127.0.0.1", 0),
        admin=("127.0.0.1", 0),
        control=None,
        token=None,
        endpoints_file=None,
        otlp=None,
        trace_sample=trace_sample,
        proxy_id="frontend-v1-test",
        advertise=None,
        log_level="INFO",
        policy=parse_policy(policy),
    )
    kwargs: dict[str, Any] = {"rng": random.Random(7), "connector": connector}
    if clock is not None:
        kwargs["clock"] = clock
    sidecar = Sidecar(config, telemetry, tracecontext.incoming, span_factory=dict, **kwargs)
    await sidecar.start()
    sidecar.registry.apply(1, services)
    return sidecar


def instances(*ports: int) -> list[dict[str, str]]:
    return [{"instance": f"i{p}", "version": "v1", "address": f"127.0.0.1:{p}"} for p in ports]


class Upstream:
    """A scripted upstream: answers each request with ``status`` (None: never answers)."""

    def __init__(self, status: int | None = 200) -> None:
        self.status = status
        self.hits = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                self.hits += 1
                if self.status is None:
                    await reader.read()  # hold the request until the peer goes
                    return
                body = b"port=%d" % self.port
                writer.write(
                    b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n\r\n%s" % (self.status, len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def upstream(servers: Any, status: int | None = 200) -> Upstream:
    scripted = Upstream(status)
    scripted.port = await servers.start(scripted.handle)
    return scripted


async def get(port: int, path: str = "/", extra: bytes = b"") -> tuple[bytes, dict[bytes, bytes], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET http://catalog%s HTTP/1.1\r\n%s\r\n" % (path.encode(), extra))
        return await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()


async def admin(sidecar: Sidecar, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["admin"])
    writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    _, _, body = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    return body


ROUND_ROBIN = {"load_balancer": "round_robin"}
OUT = ("frontend", "catalog")


def on_edges(sidecar: Sidecar) -> dict[tuple[Any, ...], int]:
    """Policy events per edge as the OTLP export will take them (proxies.telemetry.counters)."""
    return dict(sidecar.plane.metrics.edges.counts)


async def test_a_per_try_timeout_then_a_retry_to_another_instance_succeeds(servers, telemetry):
    silent, live = await upstream(servers, None), await upstream(servers)
    policy = {"default": {**ROUND_ROBIN, "retries": {"per_try_timeout_ms": 50}}}
    sidecar = await start(telemetry, {"catalog": instances(silent.port, live.port)}, policy)
    try:
        status, _, body = await get(sidecar.ports["outbound"])
        assert status.startswith(b"HTTP/1.1 200") and body == b"port=%d" % live.port
        assert silent.hits == 1 and live.hits == 1
        assert sidecar.plane.metrics.timeouts["per-try"] == 1
        assert sidecar.plane.metrics.retries_total == 1
        assert on_edges(sidecar) == {
            ("meshui.proxy.timeouts", *OUT, (("meshui.kind", "per-try"),)): 1,
            ("meshui.proxy.retries", *OUT, ()): 1,
        }
    finally:
        await sidecar.stop()


async def test_a_per_try_timeout_with_no_retry_left_is_a_504_naming_it(servers, telemetry):
    silent = await upstream(servers, None)
    policy = {"default": {"retries": {"per_try_timeout_ms": 30, "attempts": 0}}}
    sidecar = await start(telemetry, {"catalog": instances(silent.port)}, policy)
    try:
        status, headers, _ = await get(sidecar.ports["outbound"])
        assert status.startswith(b"HTTP/1.1 504")
        assert headers[b"x-meshui-timeout"] == b"per-try"
    finally:
        await sidecar.stop()


async def test_the_whole_request_timeout_is_a_504_naming_it(servers, telemetry):
    silent = await upstream(servers, None)
    policy = {"default": {"timeouts": {"request_ms": 50}}}
    sidecar = await start(telemetry, {"catalog": instances(silent.port)}, policy)
    try:
        status, headers, _ = await get(sidecar.ports["outbound"])
        assert status.startswith(b"HTTP/1.1 504")
        assert headers[b"x-meshui-timeout"] == b"request"
        assert headers[b"x-meshui-error"] == b"timeout"
        text = (await admin(sidecar, "/metrics")).decode()
        assert 'meshui_proxy_timeouts_total{kind="request"} 1' in text
    finally:
        await sidecar.stop()


async def test_a_retry_goes_to_a_different_instance(servers, telemetry):
    failing, live = await upstream(servers, 503), await upstream(servers)
    # Random two-choice balancing; without the exclusion half the retries would land on
    # the failing instance again and, with one retry, some callers would see its 503.
    policy = {
        "default": {
            "load_balancer": "least_request",
            "retries": {"attempts": 1, "backoff_base_ms": 1, "backoff_max_ms": 1},
            "outlier_detection": {"consecutive_5xx": None},
        }
    }
    sidecar = await start(telemetry, {"catalog": instances(failing.port, live.port)}, policy)
    try:
        for _ in range(20):
            status, _, body = await get(sidecar.ports["outbound"])
            assert status.startswith(b"HTTP/1.1 200") and body == b"port=%d" % live.port
        assert failing.hits > 0
        assert sidecar.plane.metrics.retries_total == failing.hits
    finally:
        await sidecar.stop()


async def test_pool_overflow_fails_fast_with_the_limit_in_a_header(servers, telemetry):
    silent = await upstream(servers, None)
    policy = {"default": {"circuit_breaker": {"max_requests": 1}}}
    sidecar = await start(telemetry, {"catalog": instances(silent.port)}, policy)
    try:
        out = sidecar.ports["outbound"]
        _, held = await asyncio.open_connection("127.0.0.1", out)
        held.write(b"GET http://catalog/ HTTP/1.1\r\n\r\n")
        await until(lambda: silent.hits == 1)
        status, headers, _ = await get(out)
        assert status.startswith(b"HTTP/1.1 503")
        assert headers[b"x-meshui-overflow"] == b"max_requests"
        assert silent.hits == 1  # never queued, never sent
        text = (await admin(sidecar, "/metrics")).decode()
        assert 'meshui_proxy_overflow_total{limit="max_requests"} 1' in text
        assert on_edges(sidecar) == {("meshui.proxy.overflows", *OUT, (("meshui.limit", "max_requests"),)): 1}
        held.close()
    finally:
        await sidecar.stop()


async def test_a_route_with_a_fault_is_not_retried(servers, telemetry):
    failing = await upstream(servers, 503)
    policy = {
        "default": {
            "routes": [{"name": "faulty", "fault": {"delay": {"fixed_ms": 1, "percent": 0}}}],
        }
    }
    sidecar = await start(telemetry, {"catalog": instances(failing.port)}, policy)
    try:
        status, _, _ = await get(sidecar.ports["outbound"])
        assert status.startswith(b"HTTP/1.1 503")
        assert failing.hits == 1
        assert sidecar.plane.metrics.retries_total == 0
    finally:
        await sidecar.stop()


async def test_an_abort_fault_answers_for_the_upstream_with_a_header(servers, telemetry):
    live = await upstream(servers)
    policy = {
        "default": {
            "routes": [
                {
                    "name": "teapot",
                    "match": {"headers": {"x-chaos": "1"}},
                    "fault": {"abort": {"status": 418, "percent": 100}},
                }
            ],
        }
    }
    sidecar = await start(telemetry, {"catalog": instances(live.port)}, policy)
    try:
        status, headers, _ = await get(sidecar.ports["outbound"], extra=b"x-chaos: 1\r\n")
        assert status.startswith(b"HTTP/1.1 418") and headers[b"x-meshui-fault"] == b"abort"
        assert live.hits == 0
        status, _, _ = await get(sidecar.ports["outbound"])  # no header: the default route
        assert status.startswith(b"HTTP/1.1 200") and live.hits == 1
        assert sidecar.plane.metrics.faults["abort"] == 1
        assert on_edges(sidecar) == {("meshui.proxy.faults", *OUT, (("meshui.kind", "abort"),)): 1}
    finally:
        await sidecar.stop()


async def test_the_rate_limit_answers_429_with_retry_after(servers, telemetry):
    live = await upstream(servers)
    clock = FakeClock()
    policy = {"default": {"rate_limit": {"total": {"requests_per_second": 1, "burst": 1}}}}
    sidecar = await start(telemetry, {"catalog": instances(live.port)}, policy, clock)
    try:
        out = sidecar.ports["outbound"]
        assert (await get(out))[0].startswith(b"HTTP/1.1 200")
        status, headers, _ = await get(out)
        assert status.startswith(b"HTTP/1.1 429 Too Many Requests")
        assert headers[b"retry-after"] == b"1" and headers[b"x-meshui-ratelimited"] == b"destination"
        assert live.hits == 1
        clock.advance(1.0)
        assert (await get(out))[0].startswith(b"HTTP/1.1 200")
        assert sidecar.plane.metrics.rate_limited["destination"] == 1
        scope = (("meshui.scope", "destination"), ("meshui.direction", "outbound"))
        assert on_edges(sidecar) == {("meshui.proxy.rate_limited", *OUT, scope): 1}
    finally:
        await sidecar.stop()


async def call_inbound(sidecar: Sidecar, caller: bytes | None) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One request to the sidecar's inbound listener, as the sidecar of ``caller`` sends it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["inbound"])
    try:
        source = b"x-meshui-source: %b\r\n" % caller if caller is not None else b""
        writer.write(b"GET / HTTP/1.1\r\nHost: frontend\r\n%b\r\n" % source)
        return await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()


async def test_inbound_limits_each_calling_service_on_its_own_bucket(servers, telemetry):
    app = await upstream(servers)
    clock = FakeClock()
    policy = {
        "services": {"frontend": {"rate_limit": {"per_source": {"requests_per_second": 1, "burst": 1}}}}
    }
    sidecar = await start(telemetry, {"catalog": []}, policy, clock, trace_sample=1.0, app_port=app.port)
    try:
        assert (await call_inbound(sidecar, b"checkout"))[0].startswith(b"HTTP/1.1 200")
        status, headers, _ = await call_inbound(sidecar, b"checkout")
        assert status.startswith(b"HTTP/1.1 429 Too Many Requests")
        assert headers[b"retry-after"] == b"1" and headers[b"x-meshui-ratelimited"] == b"source"
        # Another caller has a bucket of its own, and so do callers without a sidecar ("unknown").
        assert (await call_inbound(sidecar, b"search"))[0].startswith(b"HTTP/1.1 200")
        assert (await call_inbound(sidecar, None))[0].startswith(b"HTTP/1.1 200")
        assert (await call_inbound(sidecar, b"search"))[0].startswith(b"HTTP/1.1 429")
        assert app.hits == 3  # the refused requests never reached the local app
        clock.advance(1.0)
        assert (await call_inbound(sidecar, b"checkout"))[0].startswith(b"HTTP/1.1 200")
        metrics = sidecar.plane.metrics
        assert metrics.inbound_rate_limited == {"destination": 0, "source": 2}
        assert metrics.rate_limited == {"destination": 0, "source": 0}
        text = (await admin(sidecar, "/metrics")).decode()
        assert 'meshui_proxy_rate_limited_total{direction="inbound",scope="source"} 2' in text
        assert 'meshui_proxy_rate_limited_total{direction="outbound",scope="source"} 0' in text
        # On the export, each refusal is on its caller's edge to this service.
        scope = (("meshui.scope", "source"), ("meshui.direction", "inbound"))
        assert on_edges(sidecar) == {
            ("meshui.proxy.rate_limited", "checkout", "frontend", scope): 1,
            ("meshui.proxy.rate_limited", "search", "frontend", scope): 1,
        }
        refused = [
            s
            for s in telemetry.spans
            if s["kind"] == "server" and s["attributes"]["http.response.status_code"] == 429
        ]
        assert [e[1:] for s in refused for e in s["events"]] == [
            ("rate_limited", {"scope": "source", "retry_after_s": 1.0}),
        ] * 2
    finally:
        await sidecar.stop()


async def test_inbound_total_limit_caps_every_caller_together(servers, telemetry):
    app = await upstream(servers)
    clock = FakeClock()
    limits = {
        "total": {"requests_per_second": 1, "burst": 2},
        "per_source": {"requests_per_second": 1, "burst": 1},
    }
    policy = {"services": {"frontend": {"rate_limit": limits}}}
    sidecar = await start(telemetry, {"catalog": []}, policy, clock, app_port=app.port)
    try:
        assert (await call_inbound(sidecar, b"checkout"))[0].startswith(b"HTTP/1.1 200")
        assert (await call_inbound(sidecar, b"search"))[0].startswith(b"HTTP/1.1 200")
        # A third caller's own bucket is full, but the shared one is empty.
        status, headers, _ = await call_inbound(sidecar, b"cart")
        assert status.startswith(b"HTTP/1.1 429")
        assert headers[b"x-meshui-ratelimited"] == b"destination"
        assert app.hits == 2
        clock.advance(1.0)
        assert (await call_inbound(sidecar, b"cart"))[0].startswith(b"HTTP/1.1 200")
        assert sidecar.plane.metrics.inbound_rate_limited == {"destination": 1, "source": 0}
    finally:
        await sidecar.stop()


async def test_a_rate_limit_for_another_service_leaves_inbound_alone(servers, telemetry):
    app = await upstream(servers)
    policy = {"services": {"catalog": {"rate_limit": {"total": {"requests_per_second": 1, "burst": 1}}}}}
    sidecar = await start(telemetry, {"catalog": []}, policy, FakeClock(), app_port=app.port)
    try:
        assert sidecar.plane.inbound_limiter is None
        for _ in range(3):
            assert (await call_inbound(sidecar, b"checkout"))[0].startswith(b"HTTP/1.1 200")
    finally:
        await sidecar.stop()


async def test_a_failing_instance_is_ejected_after_five_5xx_and_gets_no_traffic_while_out(servers, telemetry):
    failing, live = await upstream(servers, 500), await upstream(servers)
    clock = FakeClock()
    policy = {"default": ROUND_ROBIN}
    sidecar = await start(telemetry, {"catalog": instances(failing.port, live.port)}, policy, clock)
    try:
        out = sidecar.ports["outbound"]
        for _ in range(10):
            await get(out)
        assert failing.hits == 5  # every other request until the fifth 500
        for _ in range(10):
            status, _, _ = await get(out)
            assert status.startswith(b"HTTP/1.1 200")
        assert failing.hits == 5 and live.hits == 15
        assert sidecar.plane.metrics.ejections_total == 1
        assert on_edges(sidecar) == {("meshui.proxy.ejections", *OUT, ()): 1}
        view = orjson.loads(await admin(sidecar, "/endpoints"))["destinations"]["catalog"]
        ejected = view["endpoints"][0]
        assert ejected["ejected"] and ejected["ejected_until"] == clock.now + 30.0
        # 30 s later the sweep puts it back in service.
        clock.advance(30.0)
        sidecar.plane.sweep()  # first tick schedules the detector's sweep
        clock.advance(10.0)
        sidecar.plane.sweep()
        for _ in range(2):
            await get(out)
        assert failing.hits == 6
    finally:
        await sidecar.stop()


async def test_a_sampled_span_carries_retry_and_ejection_events(servers, telemetry):
    failing, live = await upstream(servers, 503), await upstream(servers)
    policy = {
        "default": {
            **ROUND_ROBIN,
            "retries": {"backoff_base_ms": 1, "backoff_max_ms": 1},
            "outlier_detection": {"consecutive_5xx": 1},
        }
    }
    sidecar = await start(
        telemetry, {"catalog": instances(failing.port, live.port)}, policy, trace_sample=1.0
    )
    try:
        status, _, _ = await get(sidecar.ports["outbound"])
        assert status.startswith(b"HTTP/1.1 200")
        first = [e for e in telemetry.spans if e["kind"] == "client"][0]
        names = [name for _, name, _ in first["events"]]
        # The 503 ejects the instance, the retry skips it.
        assert names == ["ejected", "retry", "endpoint_skipped"]
        assert first["events"][1][2] == {"attempt": 1, "reason": "gateway-error"}
        assert first["events"][2][2] == {"instance": f"i{failing.port}", "reason": "ejected"}
    finally:
        await sidecar.stop()


async def test_an_idle_client_connection_is_closed_after_the_idle_timeout(servers, telemetry):
    policy = {"default": {"timeouts": {"idle_s": 2}}}
    sidecar = await start(telemetry, {"catalog": []}, policy)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["outbound"])
        # One keep-alive request (the service has no instance: a 503 that keeps the
        # connection), then nothing: the connection is idle between requests.
        writer.write(b"GET http://catalog/ HTTP/1.1\r\n\r\n")
        status, _, _ = await asyncio.wait_for(read_response(reader), 2)
        assert status.startswith(b"HTTP/1.1 503")
        sidecar.plane.sweep_idle()
        assert not reader.at_eof()
        sidecar.plane.sweep_idle()
        assert await asyncio.wait_for(reader.read(), 2) == b""
        assert sidecar.plane.metrics.timeouts["idle"] == 1
        assert on_edges(sidecar) == {}  # no request, no edge: on the admin port only
        writer.close()
    finally:
        await sidecar.stop()


async def test_a_policy_revision_swaps_the_table_and_keeps_unchanged_state(servers, telemetry):
    live = await upstream(servers)
    sidecar = await start(telemetry, {"catalog": instances(live.port)}, {"default": ROUND_ROBIN})
    try:
        plane = sidecar.plane
        before = plane.destination("catalog")
        sidecar.policies.apply({"revision": 2, "default": {**ROUND_ROBIN, "timeouts": {"request_ms": 99}}})
        after = plane.destination("catalog")
        assert after is not before and after.request_s == 0.099 and before.request_s == 15.0
        assert after.balancer is before.balancer and after.outlier is before.outlier
        assert after.budget is before.budget and after.breaker is before.breaker
        sidecar.policies.apply({"revision": 3, "default": {"load_balancer": "least_request"}})
        assert plane.destination("catalog").balancer is not after.balancer
        config = orjson.loads(await admin(sidecar, "/config"))
        assert config["policy"]["revision"] == 3
    finally:
        await sidecar.stop()


def test_span_events_are_encoded_as_otlp_span_events():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from proxies.telemetry import Resource, SpanData
    from proxies.telemetry.encode import encode_spans, resource_proto

    span = SpanData(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        parent_span_id=None,
        name="GET catalog",
        kind="client",
        start_ns=1,
        end_ns=9,
        attributes={},
        error=False,
        events=((5, "retry", {"attempt": 1, "reason": "gateway-error"}),),
    )
    request = ExportTraceServiceRequest.FromString(
        encode_spans(resource_proto(Resource("frontend", "v1", "f-1")), [span])
    )
    (event,) = request.resource_spans[0].scope_spans[0].spans[0].events
    assert event.name == "retry" and event.time_unix_nano == 5
    assert {a.key: (a.value.int_value or a.value.string_value) for a in event.attributes} == {
        "attempt": 1,
        "reason": "gateway-error",
    }


async def test_a_long_request_timeout_is_enforced_by_the_deadline_tick(servers, telemetry):
    silent = await upstream(servers, None)
    sidecar = await start(telemetry, {"catalog": instances(silent.port)}, {})  # 15 s default
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["outbound"])
        writer.write(b"GET http://catalog/ HTTP/1.1\r\n\r\n")
        plane = sidecar.plane
        await until(lambda: silent.hits == 1 and plane.deadlines)
        for exchange in plane.deadlines:
            plane.deadlines[exchange] = 0.0  # as if 15 s had passed
        plane._check_deadlines()
        status, headers, _ = await asyncio.wait_for(read_response(reader), 5)
        assert status.startswith(b"HTTP/1.1 504") and headers[b"x-meshui-timeout"] == b"request"
        assert not plane.deadlines
        writer.close()
    finally:
        await sidecar.stop()


async def test_a_finished_request_leaves_no_deadline_behind(servers, telemetry):
    live = await upstream(servers)
    sidecar = await start(telemetry, {"catalog": instances(live.port)}, {})
    try:
        await get(sidecar.ports["outbound"])
        assert not sidecar.plane.deadlines
        assert sidecar.plane.destination("catalog").breaker.requests == 0
    finally:
        await sidecar.stop()


async def test_an_upstream_silent_past_the_idle_timeout_is_a_504_naming_it(servers, telemetry):
    silent = await upstream(servers, None)
    policy = {"default": {"timeouts": {"idle_s": 1}}}
    sidecar = await start(telemetry, {"catalog": instances(silent.port)}, policy)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.ports["outbound"])
        writer.write(b"GET http://catalog/ HTTP/1.1\r\n\r\n")
        await until(lambda: silent.hits == 1)
        sidecar.plane.sweep_idle()  # one tick of 1 s with no byte from the upstream
        status, headers, _ = await asyncio.wait_for(read_response(reader), 5)
        assert status.startswith(b"HTTP/1.1 504") and headers[b"x-meshui-timeout"] == b"idle"
        writer.close()
    finally:
        await sidecar.stop()


async def test_a_connect_timeout_on_the_only_instance_is_a_504_naming_it(servers, telemetry):
    async def never_connects(pool: ConnectionPool) -> UpstreamConnection:
        raise TimeoutError  # what asyncio.wait_for raises at connect_ms

    policy = {"default": {"retries": {"attempts": 0}}}
    sidecar = await start(telemetry, {"catalog": instances(free_port())}, policy, connector=never_connects)
    try:
        status, headers, _ = await get(sidecar.ports["outbound"])
        assert status.startswith(b"HTTP/1.1 504") and headers[b"x-meshui-timeout"] == b"connect"
        assert sidecar.plane.metrics.timeouts["connect"] == 1
        assert sidecar.plane.destination("catalog").breaker.connections == 0
    finally:
        await sidecar.stop()


async def test_the_connection_limit_fails_fast_with_the_limit_in_a_header(servers, telemetry):
    silent = await upstream(servers, None)
    policy = {"default": {"circuit_breaker": {"max_connections": 1}}}
    sidecar = await start(telemetry, {"catalog": instances(silent.port)}, policy)
    try:
        out = sidecar.ports["outbound"]
        _, held = await asyncio.open_connection("127.0.0.1", out)
        held.write(b"GET http://catalog/ HTTP/1.1\r\n\r\n")
        await until(lambda: silent.hits == 1)
        status, headers, _ = await get(out)
        assert status.startswith(b"HTTP/1.1 503")
        assert headers[b"x-meshui-overflow"] == b"max_connections"
        held.close()
    finally:
        await sidecar.stop()


async def test_a_destination_with_a_health_check_gets_a_running_checker(servers, telemetry):
    live = await upstream(servers)
    policy = {"default": {"outlier_detection": {"health_check": {"path": "/healthz"}}}}
    sidecar = await start(telemetry, {"catalog": instances(live.port)}, policy)
    try:
        checker = sidecar.plane.health["catalog"]
        assert checker.task is not None and checker.detector is sidecar.plane.destination("catalog").outlier
        sidecar.policies.apply({"revision": 2})  # no health check any more
        assert "catalog" not in sidecar.plane.health and checker.task is None
    finally:
        await sidecar.stop()
