"""Protocol tests: bytes into the downstream (client) and upstream connections, bytes out."""

from __future__ import annotations

import asyncio

import pytest

from proxies.policy.parser import parse_policy
from tests.proxies.conftest import client_of, until


@pytest.fixture(autouse=True)
def round_robin(request):
    """These tests name the instance each request reaches: make the choice deterministic."""
    if "plane" in request.fixturenames:
        plane = request.getfixturevalue("plane")
        plane.policies.replace(parse_policy({"default": {"load_balancer": "round_robin"}}), "test")


async def send(listener, fakes, data: bytes, n: int = 1):
    listener.data_received(data)
    await until(lambda: len(fakes.connections) >= n and fakes.connections[n - 1].transport.data)
    conn = fakes.connections[n - 1]
    return conn, conn.transport.take()


async def test_it_rewrites_an_absolute_form_request_to_origin_form(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, sent = await send(
        listener, fake_upstreams, b"GET http://catalog:8080/items?x=1 HTTP/1.1\r\nHost: wrong\r\n\r\n"
    )
    assert sent.startswith(b"GET /items?x=1 HTTP/1.1\r\n")
    assert b"\r\nhost: catalog:8080\r\n" in sent
    assert b"Host: wrong" not in sent
    assert conn.pool.address == "10.0.0.1:15001"


async def test_it_strips_hop_by_hop_fields_both_ways(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, sent = await send(
        listener,
        fake_upstreams,
        b"GET /a HTTP/1.1\r\nHost: catalog\r\nConnection: keep-alive, X-Private\r\n"
        b"X-Private: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
        b"Proxy-Authorization: Basic eA==\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\n",
    )
    for name in (b"connection", b"x-private", b"keep-alive", b"proxy-", b"te:", b"upgrade"):
        assert name not in sent.lower()
    assert b"X-Kept: yes\r\n" in sent
    conn.data_received(
        b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\nProxy-Authenticate: B\r\n"
        b"Trailer: X-T\r\nContent-Length: 2\r\nX-Public: p\r\n\r\nok"
    )
    answer = client.take()
    assert answer == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Public: p\r\n\r\nok"


async def test_it_sends_the_source_service_and_a_traceparent_with_our_span_as_parent(plane, fake_upstreams):
    listener, client = client_of(plane)
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    conn, sent = await send(
        listener,
        fake_upstreams,
        b"GET /a HTTP/1.1\r\nHost: catalog\r\nx-meshui-source: spoofed\r\ntraceparent: "
        + incoming.encode()
        + b"\r\ntracestate: k=v\r\n\r\n",
    )
    assert b"x-meshui-source: frontend\r\n" in sent and b"spoofed" not in sent
    assert b"tracestate: k=v\r\n" in sent
    assert b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-" in sent
    assert b"b7ad6b7169203331" not in sent  # the parent is now our span


async def test_it_rechunks_a_response_whose_length_is_the_connection_close(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, _ = await send(listener, fake_upstreams, b"GET /a HTTP/1.1\r\nHost: catalog\r\n\r\n")
    conn.data_received(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello ")
    conn.data_received(b"world")
    conn.connection_lost(None)
    assert client.take() == (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
    )
    assert not client.closing


async def test_it_forwards_a_chunked_request_body_as_chunks(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, sent = await send(
        listener,
        fake_upstreams,
        b"POST /up HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    )
    assert sent.endswith(b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
    listener.data_received(b"2\r\nde\r\n0\r\n\r\n")
    assert conn.transport.take() == b"2\r\nde\r\n0\r\n\r\n"


async def test_it_reuses_the_upstream_connection_for_the_next_keep_alive_request(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, _ = await send(listener, fake_upstreams, b"GET /1 HTTP/1.1\r\nHost: catalog\r\n\r\n")
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
    # The next request from any client to the same instance takes the idle connection.
    plane.destination("catalog").balancer.cursor = 0
    other, client2 = client_of(plane)
    other.data_received(b"GET /2 HTTP/1.1\r\nHost: catalog\r\n\r\n")
    assert len(fake_upstreams.connections) == 1
    assert conn.transport.take().startswith(b"GET /2 HTTP/1.1\r\n")


async def test_a_head_response_has_no_body_and_the_connection_stays_usable(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, _ = await send(listener, fake_upstreams, b"HEAD /a HTTP/1.1\r\nHost: catalog\r\n\r\n")
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    assert client.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
    assert conn in conn.pool.idle
    plane.destination("catalog").balancer.cursor = 0
    listener.data_received(b"GET /b HTTP/1.1\r\nHost: catalog\r\n\r\n")
    assert conn.transport.take().startswith(b"GET /b ")
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    assert client.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


async def test_a_204_response_has_no_body(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, _ = await send(listener, fake_upstreams, b"DELETE /a HTTP/1.1\r\nHost: catalog\r\n\r\n")
    conn.data_received(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
    assert client.take() == b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"
    assert conn in conn.pool.idle


async def test_a_malformed_request_is_answered_400_and_closed(plane, fake_upstreams):
    listener, client = client_of(plane)
    listener.data_received(b"GET /a HTTP/1.1\r\nBad Header\r\n\r\n")
    answer = client.take()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"x-meshui-error: bad-request\r\n" in answer
    assert client.closing


async def test_pipelined_requests_are_answered_in_order(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, sent = await send(
        listener,
        fake_upstreams,
        b"GET /1 HTTP/1.1\r\nHost: catalog\r\n\r\nGET /2 HTTP/1.1\r\nHost: catalog\r\n\r\n",
    )
    assert sent.startswith(b"GET /1 ") and b"GET /2" not in sent
    assert not client.reading  # the second waits its turn
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none")
    await until(lambda: len(fake_upstreams.connections) == 2 or conn.transport.data)
    second = fake_upstreams.connections[-1]
    second_sent = second.transport.take()
    assert second_sent.startswith(b"GET /2 ")
    second.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo")
    assert client.take() == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\noneHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo"
    )
    assert client.reading


async def test_a_dead_pooled_connection_is_retried_once_on_a_fresh_one(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, _ = await send(listener, fake_upstreams, b"GET /1 HTTP/1.1\r\nHost: catalog\r\n\r\n")
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
    client.take()
    plane.destination("catalog").balancer.cursor = 0
    listener.data_received(b"GET /2 HTTP/1.1\r\nHost: catalog\r\n\r\n")
    assert conn.transport.take().startswith(b"GET /2 ")
    conn.connection_lost(ConnectionResetError())  # the upstream had closed it meanwhile
    fresh = await until(lambda: len(fake_upstreams.connections) == 2 and fake_upstreams.connections[1])
    assert fresh.pool is conn.pool
    assert fresh.transport.take().startswith(b"GET /2 ")
    fresh.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
    assert client.take().endswith(b"\r\n\r\nb")


async def test_an_upstream_closing_mid_response_cuts_the_client(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, _ = await send(listener, fake_upstreams, b"GET /1 HTTP/1.1\r\nHost: catalog\r\n\r\n")
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    conn.connection_lost(ConnectionResetError())
    assert client.take().endswith(b"abc")
    assert client.aborted


async def test_a_response_body_is_streamed_piece_by_piece(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, _ = await send(listener, fake_upstreams, b"GET /1 HTTP/1.1\r\nHost: catalog\r\n\r\n")
    conn.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n")
    assert client.take() == b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n"
    conn.data_received(b"0\r\n\r\n")
    assert client.take() == b"0\r\n\r\n"


async def test_a_full_client_buffer_pauses_reading_the_upstream(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, _ = await send(listener, fake_upstreams, b"GET /1 HTTP/1.1\r\nHost: catalog\r\n\r\n")
    listener.pause_writing()
    assert not conn.transport.reading
    listener.resume_writing()
    assert conn.transport.reading


async def test_inbound_forwards_to_the_local_app_and_reports_the_caller(plane, fake_upstreams, telemetry):
    listener, client = client_of(plane, outbound=False)
    conn, sent = await send(
        listener,
        fake_upstreams,
        b"GET /x HTTP/1.1\r\nHost: frontend\r\nx-meshui-source: checkout\r\n\r\n",
    )
    assert conn.pool.address == "127.0.0.1:9001"
    assert b"x-meshui-source: checkout\r\n" in sent
    conn.data_received(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    direction, source, destination, version, status, sidecar, duration = telemetry.requests[-1]
    assert (direction, source, destination, version, status, sidecar) == (
        "inbound",
        "checkout",
        "frontend",
        "v1",
        201,
        True,
    )
    assert 0 < duration < 5


async def test_an_http10_client_gets_the_body_delimited_by_close(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, _ = await send(listener, fake_upstreams, b"GET /1 HTTP/1.0\r\nHost: catalog\r\n\r\n")
    conn.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n")
    assert client.take() == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nab"
    assert client.closing


async def test_interim_100_continue_is_forwarded(plane, fake_upstreams):
    listener, client = client_of(plane)
    conn, _ = await send(
        listener,
        fake_upstreams,
        b"PUT /1 HTTP/1.1\r\nHost: catalog\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    )
    conn.data_received(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert client.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    listener.data_received(b"hi")
    assert conn.transport.take() == b"hi"
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert client.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


async def test_the_client_going_away_aborts_the_upstream_and_counts_499(plane, fake_upstreams, telemetry):
    listener, client = client_of(plane)
    conn, _ = await send(listener, fake_upstreams, b"GET /1 HTTP/1.1\r\nHost: catalog\r\n\r\n")
    listener.connection_lost(None)
    assert conn.transport.aborted
    assert telemetry.requests[-1][4] == 499
    await asyncio.sleep(0)


SAMPLED_PARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_tracestate_is_dropped_when_no_traceparent_came_in(plane, fake_upstreams):
    listener, client = client_of(plane)
    _, sent = await send(
        listener, fake_upstreams, b"GET /a HTTP/1.1\r\nHost: catalog\r\ntracestate: k=v\r\n\r\n"
    )
    assert b"tracestate" not in sent.lower()
    assert b"\r\ntraceparent: 00-" in sent  # a new trace instead


async def test_tracestate_is_dropped_when_the_traceparent_is_invalid(plane, fake_upstreams):
    listener, client = client_of(plane, outbound=False)
    _, sent = await send(
        listener,
        fake_upstreams,
        b"GET /a HTTP/1.1\r\nHost: frontend\r\ntraceparent: 00-" + b"0" * 32 + b"-b7ad6b7169203331-01\r\n"
        b"tracestate: k=v\r\n\r\n",
    )
    assert b"tracestate" not in sent.lower()


async def test_several_tracestate_fields_go_on_as_one_list_with_a_valid_traceparent(plane, fake_upstreams):
    listener, client = client_of(plane)
    _, sent = await send(
        listener,
        fake_upstreams,
        b"GET /a HTTP/1.1\r\nHost: catalog\r\ntraceparent: " + SAMPLED_PARENT + b"\r\n"
        b"tracestate: a=1\r\nX-Between: x\r\ntracestate: b=2\r\n\r\n",
    )
    assert sent.count(b"tracestate") == 1
    assert b"\r\ntracestate: a=1,b=2\r\n" in sent


async def test_a_connect_request_is_recorded_against_the_unregistered_destination(plane, telemetry):
    listener, client = client_of(plane)
    listener.data_received(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert b"x-meshui-error: connect-not-supported\r\n" in client.take()
    assert telemetry.requests[-1][:5] == ("outbound", "frontend", "unregistered", "", 405)


async def test_a_bad_request_target_is_recorded_against_the_unregistered_destination(plane, telemetry):
    listener, client = client_of(plane)
    listener.data_received(b"GET https://catalog/a HTTP/1.1\r\nHost: catalog\r\n\r\n")
    assert b"x-meshui-error: bad-request-target\r\n" in client.take()
    assert telemetry.requests[-1][:5] == ("outbound", "frontend", "unregistered", "", 400)


async def test_a_request_without_a_host_is_recorded_against_the_unregistered_destination(plane, telemetry):
    listener, client = client_of(plane)
    listener.data_received(b"GET /a HTTP/1.0\r\n\r\n")
    assert b"x-meshui-error: no-destination\r\n" in client.take()
    assert telemetry.requests[-1][:5] == ("outbound", "frontend", "unregistered", "", 400)


async def test_an_unknown_host_is_recorded_as_unregistered_with_the_host_in_the_span(plane, telemetry):
    listener, client = client_of(plane)
    listener.data_received(
        b"GET /a HTTP/1.1\r\nHost: Typo.Example:8080\r\ntraceparent: " + SAMPLED_PARENT + b"\r\n\r\n"
    )
    answer = client.take()
    assert b"x-meshui-error: unknown-service\r\n" in answer
    assert b"unknown service 'typo.example'" in answer
    assert telemetry.requests[-1][:5] == ("outbound", "frontend", "unregistered", "", 502)
    span = telemetry.spans[-1]
    assert span["name"] == "GET unregistered"
    assert span["attributes"]["destination.service"] == "unregistered"
    assert span["attributes"]["server.address"] == "typo.example"


async def test_an_inbound_connect_is_still_recorded_against_the_local_service(plane, telemetry):
    listener, client = client_of(plane, outbound=False)
    listener.data_received(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert b"x-meshui-error: connect-not-supported\r\n" in client.take()
    assert telemetry.requests[-1][:5] == ("inbound", "unknown", "frontend", "v1", 405)


def many_fields(n: int) -> bytes:
    """A request with exactly ``n`` header fields, Host included."""
    return (
        b"GET /a HTTP/1.1\r\nHost: catalog\r\n"
        + b"".join(b"X-F%d: v\r\n" % i for i in range(n - 1))
        + b"\r\n"
    )


async def test_a_request_with_256_header_fields_is_forwarded(plane, fake_upstreams):
    listener, client = client_of(plane)
    _, sent = await send(listener, fake_upstreams, many_fields(256))
    assert b"\r\nX-F254: v\r\n" in sent
    assert client.take() == b""


async def test_a_request_with_257_header_fields_is_answered_431(plane, fake_upstreams):
    listener, client = client_of(plane)
    listener.data_received(many_fields(257))
    answer = client.take()
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"x-meshui-error: too-many-headers\r\n" in answer
    assert fake_upstreams.connections == []


async def test_dropped_hop_by_hop_fields_count_towards_the_header_limit(plane, fake_upstreams):
    listener, client = client_of(plane)
    listener.data_received(
        b"GET /a HTTP/1.1\r\nHost: catalog\r\n" + b"Keep-Alive: timeout=5\r\n" * 256 + b"\r\n"
    )
    assert client.take().startswith(b"HTTP/1.1 431 ")


def rejected(plane, direction: str, reason: str) -> int:
    line = f'meshui_proxy_rejected_requests_total{{direction="{direction}",reason="{reason}"}} '
    [value] = [row[len(line) :] for row in plane.metrics.render().splitlines() if row.startswith(line)]
    return int(value)


async def test_a_malformed_request_is_counted_as_rejected_by_direction_and_reason(plane):
    listener, client = client_of(plane, outbound=False)
    listener.data_received(b"GET /a HTTP/1.1\r\nBad Header\r\n\r\n")
    assert client.take().startswith(b"HTTP/1.1 400 ")
    assert rejected(plane, "inbound", "bad-request") == 1
    assert rejected(plane, "outbound", "bad-request") == 0


async def test_a_request_over_the_header_limit_is_counted_as_rejected_too_many_headers(plane):
    listener, client = client_of(plane)
    listener.data_received(many_fields(257))
    assert client.take().startswith(b"HTTP/1.1 431 ")
    assert rejected(plane, "outbound", "too-many-headers") == 1


async def test_a_bug_while_parsing_is_answered_500_and_counted_as_rejected(plane):
    def broken_trace_incoming(*args):
        raise RuntimeError("a bug")

    plane.trace_incoming = broken_trace_incoming
    listener, client = client_of(plane)
    listener.data_received(b"GET /a HTTP/1.1\r\nHost: catalog\r\n\r\n")
    answer = client.take()
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert b"x-meshui-error: internal-error\r\n" in answer
    assert rejected(plane, "outbound", "internal-error") == 1
