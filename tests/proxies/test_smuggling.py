"""Request smuggling through a real sidecar, against a strict recording origin (h11).

Each attack is sent on its own connection to the inbound and to the outbound listener,
with a victim request pipelined right behind it; then the victim again on a fresh
connection. The origin records every request it parses. The bar: the origin records
exactly the requests the client sent as its own requests (never one hidden in a body or
behind a refused request), a refused request gets its status with ``connection: close``
and its connection closes, and every victim gets the origin's answer to itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from proxies.dataplane.limits import ListenerLimits
from proxies.sidecar import Sidecar
from tests.proxies.conftest import parse_responses, read_until_closed, start_sidecar
from tests.proxies.recording_origin import RecordingOrigin

CRLF = b"\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: catalog\r\n\r\n"
VICTIM = b"GET /victim HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n"


def request(
    method: bytes, target: bytes, *fields: bytes, body: bytes = b"", version: bytes = b"1.1"
) -> bytes:
    head = b"%b %b HTTP/%b\r\n" % (method, target, version)
    return head + b"".join(f + CRLF for f in (b"Host: catalog", *fields)) + CRLF + body


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def post(*fields: bytes, body: bytes = b"", version: bytes = b"1.1") -> bytes:
    return request(b"POST", b"/a", *fields, body=body, version=version)


CL = b"Content-Length: %d" % len(SMUGGLED)
TE = b"Transfer-Encoding: chunked"


@dataclass(frozen=True)
class Attack:
    name: str
    payload: bytes
    refused: int | None  # the status of the refused request; None: every request is served
    forwarded: tuple[tuple[bytes, bytes], ...] = ()  # (target, body) the origin must record first


ATTACKS = [
    # Framing named in Connection: kept, so the body arrives framed as the client framed it.
    Attack(
        "content-length named in Connection",
        post(b"Connection: keep-alive, Content-Length", CL, body=SMUGGLED),
        None,
        ((b"/a", SMUGGLED),),
    ),
    Attack(
        "transfer-encoding named in Connection",
        post(b"Connection: Transfer-Encoding", TE, body=chunked(SMUGGLED)),
        None,
        ((b"/a", SMUGGLED),),
    ),
    Attack("host named in Connection", request(b"GET", b"/a", b"Connection: host"), None, ((b"/a", b""),)),
    # CL.TE, TE.CL, duplicate and differing lengths
    Attack("duplicate content-length", post(CL, CL, body=SMUGGLED), 400),
    Attack("differing content-length", post(CL, b"Content-Length: 0", body=SMUGGLED), 400),
    Attack(
        "content-length list",
        post(b"Content-Length: %d, %d" % (len(SMUGGLED), len(SMUGGLED)), body=SMUGGLED),
        400,
    ),
    Attack("signed content-length", post(b"Content-Length: +%d" % len(SMUGGLED), body=SMUGGLED), 400),
    Attack("CL.TE", post(b"Content-Length: 6", TE, body=b"0\r\n\r\n" + SMUGGLED), 400),
    Attack(
        "TE.CL",
        post(TE, b"Content-Length: 3", body=b"%x\r\n%b\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)),
        400,
    ),
    # TE.TE obfuscations
    Attack("xchunked", post(b"Transfer-Encoding: xchunked", body=chunked(SMUGGLED)), 400),
    Attack("chunked, identity", post(b"Transfer-Encoding: chunked, identity", body=chunked(SMUGGLED)), 400),
    Attack("identity", post(b"Transfer-Encoding: identity", body=SMUGGLED), 400),
    Attack("gzip, chunked", post(b"Transfer-Encoding: gzip, chunked", body=chunked(SMUGGLED)), 501),
    Attack("two transfer-encoding fields", post(TE, TE, body=chunked(SMUGGLED)), 400),
    Attack("space before the colon", post(b"Transfer-Encoding : chunked", body=chunked(SMUGGLED)), 400),
    Attack(
        "obs-fold transfer-encoding", post(b"Transfer-Encoding:", b" chunked", body=chunked(SMUGGLED)), 400
    ),
    Attack("leading space field", post(b" Transfer-Encoding: chunked", body=chunked(SMUGGLED)), 400),
    Attack("transfer-encoding in HTTP/1.0", post(TE, body=chunked(SMUGGLED), version=b"1.0"), 400),
    Attack(
        "tab before chunked",
        post(b"Transfer-Encoding:\tchunked", body=chunked(SMUGGLED)),
        None,
        ((b"/a", SMUGGLED),),
    ),
    Attack(
        "upper-case chunked",
        post(b"Transfer-Encoding: CHUNKED", body=chunked(SMUGGLED)),
        None,
        ((b"/a", SMUGGLED),),
    ),
    # chunk sizes and lines
    Attack("negative chunk size", post(TE, body=b"-5\r\nhello\r\n0\r\n\r\n" + SMUGGLED), 400),
    Attack("chunk size with a trailing space", post(TE, body=b"5 \r\nhello\r\n0\r\n\r\n"), 400),
    Attack("hex prefix chunk size", post(TE, body=b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    Attack("chunk size overflow", post(TE, body=b"1" + b"0" * 20 + b"\r\nhello\r\n0\r\n\r\n"), 400),
    Attack("chunk longer than its size", post(TE, body=b"3\r\nhello\r\n0\r\n\r\n"), 400),
    Attack(
        "chunk extension",
        post(TE, body=b"%x;ext=1\r\n%b\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)),
        None,
        ((b"/a", SMUGGLED),),
    ),
    Attack("LF-only chunk lines", post(TE, body=b"5\nhello\n0\n\n"), 400),
    Attack("LF-only head", b"POST /a HTTP/1.1\nHost: catalog\n" + CL + b"\n\n" + SMUGGLED, 400),
    Attack(
        "trailer content-length behind a queued request",
        request(b"GET", b"/first") + post(TE, body=b"3\r\nabc\r\n0\r\nContent-Length: 40\r\n\r\n"),
        400,
        ((b"/first", b""),),
    ),
    Attack(
        "trailer field behind a queued request",
        request(b"GET", b"/first") + post(TE, body=b"3\r\nabc\r\n0\r\nX-Injected: 1\r\n\r\n"),
        None,
        ((b"/first", b""), (b"/a", b"abc")),
    ),
    # requests behind a refused one
    Attack("after CONNECT", b"CONNECT catalog:80 HTTP/1.1\r\nHost: catalog:80\r\n\r\n" + SMUGGLED, 405),
    Attack(
        "CONNECT with a body",
        b"CONNECT catalog:80 HTTP/1.1\r\nHost: catalog:80\r\n" + CL + b"\r\n\r\n" + SMUGGLED,
        405,
    ),
    Attack("after a bad request-target", request(b"GET", b"https://catalog/a") + SMUGGLED, 400),
    Attack("after 413 on a declared length", post(b"Content-Length: 5000", body=SMUGGLED * 125), 413),
    Attack("after 413 in a chunked body", post(TE, body=chunked(b"x" * 4000, SMUGGLED * 25)), 413),
    Attack("after 414", request(b"GET", b"/" + b"a" * 17000) + SMUGGLED, 414),
    Attack("after 431 on size", request(b"GET", b"/a", b"X-Big: " + b"b" * 62000) + SMUGGLED, 431),
    Attack(
        "after 431 on count", request(b"GET", b"/a", *(b"X-F%d: v" % i for i in range(300))) + SMUGGLED, 431
    ),
    Attack("after 400 on a malformed field", request(b"GET", b"/a", b"Bad Field") + SMUGGLED, 400),
    Attack(
        "after a served request then a refused one",
        request(b"GET", b"/first") + post(CL, CL, body=SMUGGLED),
        400,
        ((b"/first", b""),),
    ),
    Attack(
        "upgrade with a body",
        request(b"GET", b"/a", b"Upgrade: h2c", b"Connection: upgrade", CL, body=SMUGGLED),
        400,
    ),
    Attack(
        "upgrade without a body",
        request(b"GET", b"/a", b"Upgrade: websocket", b"Connection: Upgrade"),
        None,
        ((b"/a", b""),),
    ),
    Attack("two host fields", request(b"GET", b"/a", b"Host: evil"), 400),
    Attack("NUL in a field value", request(b"GET", b"/a", b"X-A: a\x00b"), 400),
    Attack("bare CR in a field value", request(b"GET", b"/a", b"X-A: a\rb"), 400),
    Attack("HTTP/2.0 request line", request(b"GET", b"/a", version=b"2.0"), 400),
]


@pytest.fixture
async def mesh(telemetry: object) -> AsyncIterator[tuple[RecordingOrigin, Sidecar]]:
    origin = RecordingOrigin()
    port = await origin.start()
    sidecar = await start_sidecar(
        telemetry,
        port,
        {"catalog": [{"instance": "c1", "version": "v1", "address": f"127.0.0.1:{port}"}]},
        limits=ListenerLimits(max_request_body_bytes=4096),  # so that a 413 can be tried too
    )
    yield origin, sidecar
    await sidecar.stop()
    origin.close()


async def exchange(port: int, data: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Send ``data`` on a new connection; every response until the sidecar closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return parse_responses(await read_until_closed(reader))
    finally:
        writer.close()


@pytest.mark.parametrize("listener", ["inbound", "outbound"])
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
async def test_nothing_is_smuggled_past_the_sidecar(mesh, listener: str, attack: Attack) -> None:
    origin, sidecar = mesh
    port = sidecar.ports[listener]
    responses = await exchange(port, attack.payload + VICTIM)
    statuses = [status for status, _, _ in responses]
    served = [200] * len(attack.forwarded)
    if attack.refused is not None:
        # The refused request is answered with close; the victim behind it is never read.
        assert statuses == served + [attack.refused]
        _, fields, _ = responses[-1]
        assert fields[b"connection"] == b"close"
        assert b"x-meshui-error" in fields
    else:
        assert statuses == served + [200]
        assert responses[-1][2] == b"origin saw /victim"
    # A victim on a connection of its own gets its own answer.
    [(status, _, body)] = await exchange(port, VICTIM)
    assert (status, body) == (200, b"origin saw /victim")
    expected = (
        [*attack.forwarded] + ([(b"/victim", b"")] if attack.refused is None else []) + [(b"/victim", b"")]
    )
    assert [(r.target, r.body) for r in origin.requests] == expected
    assert b"/smuggled" not in origin.targets()
    assert origin.protocol_errors == []
    for recorded in origin.requests:
        assert len(recorded.header(b"host")) == 1
        assert not recorded.header(b"x-injected")  # a trailer never becomes a header
        assert not (recorded.header(b"content-length") and recorded.header(b"transfer-encoding"))


async def test_a_response_naming_content_length_in_connection_keeps_its_framing(telemetry, servers) -> None:
    """Content-Length named in a response's Connection stays: the body stays framed."""

    async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nConnection: content-length, x-hop\r\nX-Hop: 1\r\n"
            b"Content-Length: 5\r\n\r\nhello"
        )
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
        await writer.drain()
        writer.close()

    port = await servers.start(app)
    sidecar = await start_sidecar(telemetry, port, {})
    try:
        responses = await exchange(
            sidecar.ports["inbound"],
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        assert [(status, body) for status, _, body in responses] == [(200, b"hello"), (200, b"second")]
        assert responses[0][1][b"content-length"] == b"5"
        assert b"x-hop" not in responses[0][1]
    finally:
        await sidecar.stop()
