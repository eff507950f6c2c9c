"""A stand-in OTLP/HTTP backend on loopback: answers from a script, records every request.

Real sockets and a strict HTTP/1.1 parser (h11), so the forwarder's requests are read the
way any server would read them; used where a second collector cannot play the backend
(a 503 then a 200, a 400, a partial success).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import h11


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/x-protobuf"),)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedBackend:
    """Answers the n-th request with ``script[n]``, and ``then`` once the script is used up."""

    script: list[Reply] = field(default_factory=list)
    then: Reply = field(default_factory=Reply)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ScriptedBackend:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER)
        try:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    connection.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(event, h11.Request):
                    request, body = event, bytearray()
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    self.received.append(
                        Received(
                            request.method.decode(),
                            request.target.decode(),
                            {k.decode().lower(): v.decode() for k, v in request.headers},
                            bytes(body),
                        )
                    )
                    n = len(self.received) - 1
                    reply = self.script[n] if n < len(self.script) else self.then
                    headers = [*reply.headers, ("content-length", str(len(reply.body)))]
                    writer.write(connection.send(h11.Response(status_code=reply.status, headers=headers)))
                    writer.write(connection.send(h11.Data(data=reply.body)))
                    writer.write(connection.send(h11.EndOfMessage()))
                    await writer.drain()
                    connection.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except (ConnectionError, h11.ProtocolError):
            return
        finally:
            writer.close()
