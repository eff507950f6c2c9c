"""Property-based fuzzing of both data listeners: mutated request streams in, what comes out judged.

Each case is one to three requests built from the parts smuggling lives in (framing fields
and their obfuscations, chunk size lines, Connection options, odd bytes in names and
values, line ends, bodies that hold a request), split across reads at random, fed to a
client connection (DownstreamConnection) on a fake transport; the upstream side is fake
connections answered by a strict parser (h11). An independent strict parse of the
client's own bytes (h11 again) says which requests the client sent. The bar:

- never a crash, never ``500 internal-error``;
- the client gets only well-formed responses, and nothing after one that says close;
- a refused request's connection is closed;
- every request that reaches an upstream is well-framed (h11 parses it) and is one the
  client sent as its own request, with the body it sent, each at most once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import h11
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from proxies import http1
from proxies.dataplane.limits import ListenerLimits
from proxies.dataplane.upstream import ConnectionPool, UpstreamConnection
from tests.fuzzing import examples, outcome
from tests.proxies.conftest import FakeTransport, client_of, frontend_plane

pytestmark = pytest.mark.fuzz

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: catalog\r\n\r\n"
TE_VALUES = [b"chunked", b" chunked", b"chunked ", b"\tchunked", b"CHUNKED", b"xchunked",
             b"chunked, identity", b"gzip, chunked", b"identity", b"chunked,chunked", b"chunk",
             b"\x00chunked"]  # fmt: skip
CONNECTION_VALUES = [b"keep-alive", b"close", b"Content-Length", b"keep-alive, Content-Length",
                     b"transfer-encoding", b"host", b"upgrade", b"x-private", b"close, host"]  # fmt: skip
ODD = st.sampled_from(
    [b"", b" ", b"\t", b"\x00", b"\r", b"\n", b"\x7f", b"\x80\xff", b",", b";", b":", b"\r\n "]
)
NAMES = st.one_of(
    st.sampled_from([b"X-A", b"Accept", b"Upgrade", b"Expect", b"Trailer", b"TE", b"Keep-Alive",
                     b"traceparent", b"tracestate", b"x-meshui-source", b"Content-Length",
                     b"Transfer-Encoding", b"Host"]),
    st.sampled_from([b"X-A", b"Accept", b"Upgrade", b"Expect", b"Trailer", b"TE"]),
    st.sampled_from([b"X-A", b"Accept", b"Upgrade", b"Expect", b"Trailer", b"TE"]),
    st.binary(min_size=1, max_size=6),
)  # fmt: skip
VALUES = st.one_of(
    st.sampled_from([b"v", b"100-continue", b"h2c", b"5", b"0", b"catalog", b"evil", b"chunked", b"a=1"]),
    st.tuples(ODD, st.binary(max_size=6), ODD).map(b"".join),
)
BODIES = st.sampled_from([b"", b"hello", SMUGGLED, b"0\r\n\r\n" + SMUGGLED, b"x" * 70])


@st.composite
def chunked_body(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` in chunks, with the chunk-size line variants llhttp must refuse or accept."""
    out, rest = b"", body
    while rest:
        n = draw(st.integers(1, len(rest)))
        size = draw(
            st.sampled_from(
                [b"%x" % n] * 8 + [b"%X" % n, b"00%x" % n, b"%x;ext=1" % n, b"%x " % n, b"-%x" % n,
                 b"0x%x" % n, b"%x" % (n + 1), b"1" + b"0" * 20]
            )
        )  # fmt: skip
        line = draw(st.sampled_from([b"\r\n"] * 8 + [b"\n"]))
        out += size + line + rest[:n] + b"\r\n"
        rest = rest[n:]
    last = draw(st.sampled_from([b"0\r\n\r\n"] * 6 + [b"0\r\nX-Trailer: t\r\n\r\n", b"0\n\n", b""]))
    return out + last


@st.composite
def request(draw: st.DrawFn, index: int) -> bytes:
    method = draw(st.sampled_from([b"GET", b"GET", b"POST", b"POST", b"PUT", b"HEAD", b"DELETE", b"CONNECT"]))
    target = draw(
        st.sampled_from(
            [b"/r%d" % index] * 4
            + [b"/r%d?q=1" % index, b"http://catalog/r%d" % index, b"/r%d?" % index + b"q" * 80]
        )
    )  # the last one is past this plane's --max-target-bytes (64): a 414
    if method == b"CONNECT":
        target = b"catalog:80"
    version = draw(st.sampled_from([b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"HTTP/2.0"]))
    eol = draw(st.sampled_from([b"\r\n"] * 24 + [b"\n"]))
    sep = draw(st.sampled_from([b": "] * 20 + [b":", b":\t", b" : ", b": \t"]))
    fields: list[tuple[bytes, bytes]] = []
    host = draw(st.sampled_from([b"catalog"] * 6 + [b"Catalog:80", b"", None, b"evil"]))
    if host is not None or target.startswith(b"http://"):
        fields.append((b"Host", host if host is not None else b"catalog"))
    body = draw(BODIES)
    framing = draw(
        st.sampled_from(["none", "cl", "cl", "te", "te", "cl+te", "cl-short", "cl-long", "cl-dup"])
    )
    payload = body
    if framing in ("cl", "cl+te"):
        fields.append((b"Content-Length", b"%d" % len(body)))
    elif framing == "cl-short":
        fields.append((b"Content-Length", b"%d" % max(0, len(body) - 3)))
    elif framing == "cl-long":
        fields.append((b"Content-Length", b"%d" % (len(body) + 5)))
    elif framing == "cl-dup":
        fields += [(b"Content-Length", b"%d" % len(body))] * 2
    if framing in ("te", "cl+te"):
        te = draw(st.one_of(st.just(b"chunked"), st.sampled_from(TE_VALUES)))
        fields.append((b"Transfer-Encoding", te))
        payload = draw(chunked_body(body))
    if draw(st.booleans()):
        fields.append((b"Connection", draw(st.sampled_from(CONNECTION_VALUES))))
    plain = st.tuples(
        st.sampled_from([b"X-A", b"Accept", b"User-Agent"]),
        st.sampled_from([b"v", b"*/*", b"a b", b"v" * 600]),  # 600 bytes: past --max-header-bytes (512)
    )
    odd = st.tuples(NAMES, VALUES)
    fields += draw(st.lists(st.one_of(plain, plain, plain, plain, plain, odd), max_size=3))
    order = draw(st.permutations(range(len(fields))))
    head = method + b" " + target + b" " + version + eol
    head += b"".join(fields[i][0] + sep + fields[i][1] + eol for i in order)
    return head + eol + payload


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    n = draw(st.integers(1, 3))
    data = b"".join(draw(request(i)) for i in range(n))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=6))))
    return data, cuts


# the oracle: what a strict server reads from the client's bytes ---------------------------


def normal_target(target: bytes) -> bytes:
    if target.lower().startswith(b"http://"):
        rest = target[7:]
        cut = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i != -1), default=len(rest))
        return rest[cut:] or b"/"
    return target


def strict_requests(data: bytes, outbound: bool) -> list[tuple[bytes, bytes, bytes]]:
    """(method, origin-form target, body) of each request h11 reads, until it refuses the bytes.

    Empty lines before a request are skipped, as RFC 9112 §2.2 lets a server do (llhttp
    does, h11 does not): a difference in leniency between requests, not in framing. To the
    outbound listener, a proxy, an absolute-form request needs no Host: the target's
    authority replaces it (RFC 9112 §3.2.2; nginx and Envoy do so too), so h11 is handed one.
    """
    found: list[tuple[bytes, bytes, bytes]] = []
    while True:
        data = data.lstrip(b"\r\n")
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        current: list[bytes] = []
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                    return found
                if isinstance(event, h11.Request):
                    current = [bytes(event.method), normal_target(bytes(event.target)), b""]
                elif isinstance(event, h11.Data):
                    current[2] += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    found.append((current[0], current[1], current[2]))
                    conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                    conn.send(h11.EndOfMessage())
                    if conn.our_state is h11.MUST_CLOSE:
                        return found
                    data = bytes(conn.trailing_data[0])
                    break
        except (h11.RemoteProtocolError, h11.LocalProtocolError) as exc:
            line, _, rest = data.partition(b"\r\n")
            if outbound and "Missing mandatory Host" in str(exc) and b" http://" in line:
                data = line + b"\r\nHost: authority\r\n" + rest
                continue
            return found


def split_responses(data: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """The responses in ``data``, each parsed strictly; a head-only one (a HEAD's) is allowed.

    Every response in these cases is framed by Content-Length (the fake upstream's and the
    sidecar's own), so each is cut at head + length, or at its head when a status line
    follows there (a response to HEAD), then parsed on its own.
    """
    responses = []
    at = 0
    while at < len(data):
        head_end = data.index(b"\r\n\r\n", at) + 4
        head = data[at:head_end]
        lengths = [
            line.split(b":", 1)[1]
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        ]
        assert len(lengths) == 1, head
        end = head_end + int(lengths[0])
        if not (end == len(data) or data.startswith(b"HTTP/1.1 ", end)):
            end = head_end  # head only
        responses.append(parse_one(data[at:end]))
        at = end
    return responses


def parse_one(piece: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    class Collect:
        fields: dict[bytes, bytes] = {}
        body = b""
        head_done = done = False

        def on_header(self, name: bytes, value: bytes) -> None:
            self.fields = {**self.fields, name.lower(): value}

        def on_headers_complete(self) -> None:
            self.head_done = True

        def on_body(self, body: bytes) -> None:
            self.body += body

        def on_message_complete(self) -> None:
            self.done = True

    collect = Collect()
    parser = http1.ResponseParser(collect)
    parser.feed_data(piece)
    assert collect.done or (collect.head_done and piece.endswith(b"\r\n\r\n")), piece
    return parser.get_status_code(), collect.fields, collect.body


# the system under test, on one event loop per test ---------------------------------------


class Upstreams:
    """Fake upstream connections, each read by h11 and answered 200 per complete request."""

    def __init__(self) -> None:
        self.connections: list[tuple[UpstreamConnection, h11.Connection]] = []
        self.requests: list[tuple[bytes, bytes, bytes]] = []
        self.broken: list[str] = []
        self._bodies: dict[int, list[bytes]] = {}

    async def connect(self, pool: ConnectionPool) -> UpstreamConnection:
        conn = UpstreamConnection(pool)
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        self.connections.append((conn, h11.Connection(h11.SERVER)))
        return conn

    def answer(self) -> bool:
        """Read what each upstream connection got; answer complete requests. True if any."""
        progressed = False
        for i, (conn, parser) in enumerate(self.connections):
            transport = conn.transport
            data = transport.take()  # type: ignore[attr-defined]
            if data:
                parser.receive_data(data)
            if transport.closing and parser.their_state is not h11.DONE:  # type: ignore[attr-defined]
                parser.receive_data(b"")
            try:
                while True:
                    event = parser.next_event()
                    if (
                        event is h11.NEED_DATA
                        or event is h11.PAUSED
                        or isinstance(event, h11.ConnectionClosed)
                    ):
                        break
                    if isinstance(event, h11.Request):
                        self._bodies[i] = [bytes(event.method), bytes(event.target), b""]
                    elif isinstance(event, h11.Data):
                        self._bodies[i][2] += bytes(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        method, target, body = self._bodies.pop(i)
                        self.requests.append((method, target, body))
                        parser.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                        parser.send(h11.EndOfMessage())
                        parser.start_next_cycle()
                        if not transport.closing:  # type: ignore[attr-defined]
                            conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        progressed = True
            except h11.RemoteProtocolError as exc:
                if not (transport.closing and "closed" in str(exc)):  # type: ignore[attr-defined]
                    self.broken.append(f"{exc}: {data!r}")  # forwarded bytes a strict server refuses
                # (a request cut by the sidecar closing the connection is fine: it refused it)
                self.connections[i] = (conn, h11.Connection(h11.SERVER))
        return progressed


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def settle(loop: asyncio.AbstractEventLoop, fakes: Upstreams) -> None:
    """Run the loop and answer the upstreams until nothing moves (connects are loop tasks)."""
    idle = 0
    while idle < 2:
        loop.run_until_complete(asyncio.sleep(0))
        idle = 0 if fakes.answer() else idle + 1


def run_case(loop: asyncio.AbstractEventLoop, outbound: bool, data: bytes, cuts: list[int]):
    fakes = Upstreams()
    plane = frontend_plane(
        fakes.connect,
        loop=loop,
        limits=ListenerLimits(
            max_header_bytes=512, max_target_bytes=64, max_headers=12, max_request_body_bytes=64
        ),
    )
    plane.registry.apply(1, {"catalog": [{"instance": "c1", "version": "v1", "address": "10.0.0.1:1"}]})
    reads = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    downstream, client = client_of(plane, outbound)
    for piece in reads:
        settle(loop, fakes)  # the connection may pause reading until its request is answered
        if client.closing:
            break
        downstream.data_received(piece)
    settle(loop, fakes)
    downstream.connection_lost(None)
    loop.run_until_complete(asyncio.sleep(0))
    return client, fakes


def check(loop: asyncio.AbstractEventLoop, outbound: bool, data: bytes, cuts: list[int]) -> str:
    client, fakes = run_case(loop, outbound, data, cuts)
    answered = client.take()
    responses = split_responses(answered) if not client.aborted else []
    sent = strict_requests(data, outbound)
    # Only requests the client sent, with their bodies, each at most once.
    assert not fakes.broken, fakes.broken
    reached = Counter(fakes.requests)
    allowed = Counter(sent)
    assert not reached - allowed, (reached, allowed)
    assert all(target != b"/smuggled" for _, target, _ in fakes.requests) or (
        any(target == b"/smuggled" for _, target, _ in sent)
    )
    # Every request that reached an upstream was answered to the client (the fake upstream
    # answers at once): none was sent on after the sidecar refused one and closed.
    if not client.aborted:
        relayed = [fields for status, fields, _ in responses if b"x-meshui-error" not in fields]
        assert len(relayed) == len(fakes.requests), (responses, fakes.requests)
    for i, (status, fields, _) in enumerate(responses):
        assert status != 500, fields
        if fields.get(b"connection") == b"close":
            assert i == len(responses) - 1  # nothing after a close
            assert client.closing
    if not responses:
        return "aborted" if client.aborted else "none"
    status, fields, _ = responses[-1]
    code = fields.get(b"x-meshui-error")
    # Sidecar-made answers carry their code: "502 unknown-service" is a mutated Host, not a
    # server error; a bare 5xx label would be (tests/fuzzing.py counts those).
    return str(status) if code is None or status == 500 else f"{status} {code.decode()}"


# Found by make fuzz: a refusal behind an Upgrade request answered 500 (see RequestReader._feed).
AFTER_UPGRADE = (b"GET /r0 HTTP/1.1\r\nHost: catalog\r\nConnection: upgrade\r\nUpgrade: v\r\n\r\n"
                 b"GET /r1 HTTP/2.0\r\nHost: catalog\r\n\r\n", [])


# Found by make fuzz: inbound forwarded an absolute-form HTTP/1.1 request that had no Host (an
# app needs one); outbound takes the target's authority as Host, as a proxy does.
ABSOLUTE_WITHOUT_HOST = (b"GET http://catalog/r0 HTTP/1.1\r\nX-A: \r\n\r\n\r\nHost: catalog\r\n\r\n", [])


@examples(cost=2)
@given(streams())
@example(stream=AFTER_UPGRADE)
@example(stream=ABSOLUTE_WITHOUT_HOST)
def test_fuzz_outbound_listener(loop, stream) -> None:
    data, cuts = stream
    outcome("outbound_listener", check(loop, True, data, cuts))


@examples(cost=2)
@given(streams())
@example(stream=AFTER_UPGRADE)
@example(stream=ABSOLUTE_WITHOUT_HOST)
def test_fuzz_inbound_listener(loop, stream) -> None:
    data, cuts = stream
    outcome("inbound_listener", check(loop, False, data, cuts))
