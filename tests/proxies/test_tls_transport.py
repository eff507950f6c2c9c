"""The data plane's TLS layer (proxies.dataplane.tls) on real sockets, against a peer whose
every byte the test chooses: records split, coalesced, garbage, close_notify, silence."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import uvloop

from proxies.dataplane.tls import TlsTransport
from proxies.identity import keys
from proxies.identity.tls import build_context
from tests.polling import eventually
from tests.proxies.mesh_ca import MeshCA


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, None]], None]:
    """Each case on both loops: the sidecar runs on uvloop, the in-process tests on asyncio's."""
    return uvloop.run if request.param == "uvloop" else asyncio.run  # type: ignore[return-value]


@pytest.fixture(scope="module")
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts of two mesh services of one CA."""
    ca = MeshCA()
    server_key, server_chain = ca.issue("payments")
    client_key, client_chain = ca.issue("frontend")
    return (
        build_context(True, server_chain.encode(), keys.key_pem(server_key), ca.roots_pem),
        build_context(False, client_chain.encode(), keys.key_pem(client_key), ca.roots_pem),
    )


class App(asyncio.Protocol):
    """The connection on top: keeps what it is given (a view valid during the call only)."""

    def __init__(self, pause_after_first: bool = False) -> None:
        self.transport: Any = None
        self.received = bytearray()
        self.reads: list[type] = []
        self.lost: list[BaseException | None] = []
        self.pause_after_first = pause_after_first

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: Any) -> None:
        self.reads.append(type(data))
        self.received += data
        if self.pause_after_first and len(self.reads) == 1:
            self.transport.pause_reading()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


class Server:
    """A TLS listener of TlsTransports, each with an App."""

    def __init__(self, context: ssl.SSLContext, timeout: float = 5.0, **app: Any) -> None:
        self.context, self.timeout, self.app_options = context, timeout, app
        self.tls: list[TlsTransport] = []
        self.apps: list[App] = []
        self.buffer = memoryview(bytearray(65536))

    def _factory(self) -> TlsTransport:
        loop = asyncio.get_running_loop()

        def app() -> App:
            self.apps.append(App(**self.app_options))
            return self.apps[-1]

        self.tls.append(TlsTransport(loop, self.context, True, app, self.buffer, timeout=self.timeout))
        return self.tls[-1]

    async def start(self) -> int:
        self.server = await asyncio.get_running_loop().create_server(self._factory, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


class Peer:
    """A TLS client over a plain socket, through memory BIOs: the test decides which bytes
    go out when."""

    def __init__(self, context: ssl.SSLContext, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(5)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="payments")

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                self.incoming.write(self.sock.recv(65536))
        self.sock.sendall(self.outgoing.read())

    def records(self, *messages: bytes) -> bytes:
        """The TLS records of ``messages``, one write (so one record, or more past 16 KiB) each."""
        for message in messages:
            self.tls.write(message)
        return self.outgoing.read()

    def read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            try:
                data += self.tls.read(size - len(data))
            except ssl.SSLWantReadError:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.incoming.write(chunk)
        return data

    def close(self) -> None:
        self.sock.close()


async def in_thread(function: Any, *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


@contextlib.asynccontextmanager
async def connected(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, handshake: bool = True, **options: Any
) -> AsyncIterator[tuple[Server, Peer]]:
    """A server of TlsTransports, and a Peer connected to it (done with its handshake)."""
    server = Server(server_context, **options)
    port = await server.start()
    peer = Peer(client_context, port)
    try:
        if handshake:
            await in_thread(peer.handshake)
        yield server, peer
    finally:
        peer.close()
        await server.stop()


def test_a_handshake_then_records_both_ways(run, contexts) -> None:
    run(_a_handshake_then_records_both_ways(contexts))


async def _a_handshake_then_records_both_ways(contexts) -> None:
    server_context, client_context = contexts
    server = Server(server_context)
    port = await server.start()
    loop = asyncio.get_running_loop()
    buffer = memoryview(bytearray(65536))
    client_app = App()
    _, client = await loop.create_connection(
        lambda: TlsTransport(loop, client_context, False, lambda: client_app, buffer,
                             server_hostname="payments"),
        "127.0.0.1", port)
    try:
        assert await asyncio.wait_for(client.handshake, 5) is client_app
        await eventually(lambda: server.apps and server.apps[0].transport is not None)
        server_tls, server_app = server.tls[0], server.apps[0]
        # Each side sees the other's verified certificate, as the data plane reads it.
        assert client.get_extra_info("peercert")["subjectAltName"] == (
            ("URI", "spiffe://test.mesh/service/payments"),)
        assert server_tls.get_extra_info("ssl_object").getpeercert()["subjectAltName"] == (
            ("URI", "spiffe://test.mesh/service/frontend"),)
        assert client.get_extra_info("cipher")[1] == "TLSv1.3"
        client.write(b"GET / HTTP/1.1\r\n\r\n")
        await eventually(lambda: bytes(server_app.received) == b"GET / HTTP/1.1\r\n\r\n")
        assert server_app.reads == [memoryview]  # a view of the plane's buffer, no bytes copy
        server_tls.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await eventually(lambda: bytes(client_app.received) == b"HTTP/1.1 204 No Content\r\n\r\n")
        big = bytes(range(256)) * 1024  # 256 KiB: sixteen records, four fills of the buffer
        client.write(big)
        await eventually(lambda: len(server_app.received) == 18 + len(big))
        assert bytes(server_app.received[18:]) == big
    finally:
        client.close()
        await server.stop()
    # close() sent close_notify: the server's connection ends cleanly, not with an error.
    await eventually(lambda: server.apps[0].lost == [None] and client_app.lost == [None])


@pytest.mark.parametrize("chunking", ["byte by byte", "all at once"])
def test_records_split_or_coalesced_arrive_whole(run, contexts, chunking) -> None:
    run(_records_split_or_coalesced_arrive_whole(contexts, chunking))


async def _records_split_or_coalesced_arrive_whole(contexts, chunking) -> None:
    async with connected(*contexts) as (server, peer):
        messages = [b"first request\r\n", b"x" * 20_000, b"third\r\n"]
        wire = peer.records(*messages)
        if chunking == "byte by byte":
            first_end = 5 + int.from_bytes(wire[3:5], "big")  # a record's header, then its length
            for index in range(0, 400):  # the first record and a bit, a byte a segment
                peer.sock.sendall(wire[index:index + 1])
                if index == first_end - 1:
                    await eventually(lambda: server.apps and server.apps[0].received == b"first request\r\n")
            peer.sock.sendall(wire[400:])
        else:
            peer.sock.sendall(wire)
        expected = b"".join(messages)
        await eventually(lambda: server.apps and bytes(server.apps[0].received) == expected)


def test_paused_reading_keeps_the_rest_until_resumed(run, contexts) -> None:
    run(_paused_reading_keeps_the_rest_until_resumed(contexts))


async def _paused_reading_keeps_the_rest_until_resumed(contexts) -> None:
    async with connected(*contexts, pause_after_first=True) as (server, peer):
        peer.sock.sendall(peer.records(b"one", b"two", b"three"))  # three records, one segment
        await eventually(lambda: server.apps and server.apps[0].received == b"one")
        app = server.apps[0]
        assert app.received == b"one"  # the other two records came in the same read: kept
        app.transport.resume_reading()
        await eventually(lambda: app.received == b"onetwothree")


def test_close_notify_from_the_peer_ends_the_connection_cleanly(run, contexts) -> None:
    run(_close_notify_from_the_peer_ends_the_connection_cleanly(contexts))


async def _close_notify_from_the_peer_ends_the_connection_cleanly(contexts) -> None:
    async with connected(*contexts) as (server, peer):
        peer.sock.sendall(peer.records(b"last words"))
        try:
            peer.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        peer.sock.sendall(peer.outgoing.read())
        await eventually(lambda: server.apps and server.apps[0].lost == [None])
        assert server.apps[0].received == b"last words"
        # ... and answered it with its own close_notify before closing the socket.
        while chunk := await in_thread(peer.sock.recv, 65536):
            peer.incoming.write(chunk)
        with pytest.raises(ssl.SSLZeroReturnError):
            peer.tls.read(1)


def test_garbage_after_the_handshake_cuts_the_connection_with_the_reason(run, contexts) -> None:
    run(_garbage_after_the_handshake_cuts_the_connection_with_the_reason(contexts))


async def _garbage_after_the_handshake_cuts_the_connection_with_the_reason(contexts) -> None:
    async with connected(*contexts) as (server, peer):
        record = bytearray(peer.records(b"GET / HTTP/1.1\r\n\r\n"))
        record[-1] ^= 0xFF  # a bit flipped in the tag: the record does not authenticate
        peer.sock.sendall(bytes(record))
        await eventually(lambda: server.apps and server.apps[0].lost)
        assert isinstance(server.apps[0].lost[0], ssl.SSLError)
        assert server.apps[0].received == b""  # nothing of a forged record reaches the parser
        assert await in_thread(peer.sock.recv, 1) == b""  # the socket was closed


def test_a_silent_or_vanishing_peer_fails_the_handshake(run, contexts) -> None:
    run(_a_silent_or_vanishing_peer_fails_the_handshake(contexts))


async def _a_silent_or_vanishing_peer_fails_the_handshake(contexts) -> None:
    server_context, _ = contexts
    server = Server(server_context, timeout=0.2)
    port = await server.start()
    silent = socket.create_connection(("127.0.0.1", port))
    vanishing = socket.create_connection(("127.0.0.1", port))
    try:
        await eventually(lambda: len(server.tls) == 2)
        vanishing.close()
        outcomes = await asyncio.gather(*(tls.handshake for tls in server.tls), return_exceptions=True)
        kinds = sorted(type(outcome).__name__ for outcome in outcomes)
        assert kinds == ["ConnectionResetError", "TimeoutError"]
        assert server.apps == []  # no connection was made for either
        silent.settimeout(5)
        assert await in_thread(silent.recv, 1) == b""  # the silent one was cut at its timeout
    finally:
        silent.close()
        await server.stop()


def test_a_client_certificate_of_another_ca_fails_the_handshake_with_an_alert(run, contexts) -> None:
    run(_a_client_certificate_of_another_ca_fails_the_handshake_with_an_alert(contexts))


async def _a_client_certificate_of_another_ca_fails_the_handshake_with_an_alert(contexts) -> None:
    server_context, _ = contexts
    stranger = MeshCA("another root")
    key, chain = stranger.issue("frontend")
    foreign = build_context(False, chain.encode(), keys.key_pem(key), stranger.roots_pem)
    foreign.verify_mode = ssl.CERT_NONE  # it does not trust our server either; it need not
    async with connected(server_context, foreign, handshake=False) as (server, peer):
        with pytest.raises(ssl.SSLError):
            await in_thread(peer.handshake)
            await in_thread(peer.read, 1)  # TLS 1.3: the client learns of the refusal on reading
        await eventually(lambda: server.tls and server.tls[0].handshake.done())
        assert isinstance(server.tls[0].handshake.exception(), ssl.SSLCertVerificationError)
        assert server.apps == []
