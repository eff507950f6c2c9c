"""A strict origin for smuggling tests: a real socket server that parses with h11 and records.

h11 is a second, independent HTTP/1.1 parser (the sidecar parses with llhttp): whatever the
sidecar forwards is read the way a strict application server would read it. Each request
it parses completely is recorded (method, target, headers, body) and answered 200 with
``origin saw <target>`` as the body, so a client can tell whose response it got. Bytes h11
refuses are recorded as protocol errors: the sidecar must never forward such bytes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import h11


@dataclass(frozen=True)
class Recorded:
    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def header(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]


@dataclass
class RecordingOrigin:
    requests: list[Recorded] = field(default_factory=list)
    protocol_errors: list[str] = field(default_factory=list)
    connections: int = 0
    incomplete: int = 0
    server: asyncio.Server | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()  # the handler reads EOF and ends (no task left to cancel)

    def targets(self) -> list[bytes]:
        return [r.target for r in self.requests]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = b""
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if not data and conn.their_state is h11.SEND_BODY:
                        self.incomplete += 1  # the sidecar cut a request it refused mid-body
                        break
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    request, body = event, b""
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    assert request is not None
                    self.requests.append(
                        Recorded(
                            bytes(request.method),
                            bytes(request.target),
                            tuple((bytes(k), bytes(v)) for k, v in request.headers),
                            body,
                        )
                    )
                    answer = b"origin saw " + bytes(request.target)
                    writer.write(
                        conn.send(
                            h11.Response(status_code=200, headers=[("content-length", str(len(answer)))])
                        )
                        + conn.send(h11.Data(data=answer))
                        + conn.send(h11.EndOfMessage())
                    )
                    await writer.drain()
                    if conn.our_state is h11.MUST_CLOSE:
                        break
                    conn.start_next_cycle()
                elif event is h11.PAUSED:
                    break
                else:  # ConnectionClosed
                    break
        except h11.RemoteProtocolError as exc:
            self.protocol_errors.append(str(exc))
        except (ConnectionError, h11.LocalProtocolError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()
