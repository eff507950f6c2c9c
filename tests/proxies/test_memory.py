"""A real sidecar process keeps its memory through oversized heads (the issue's 64 MiB header/URL).

The sidecar runs as ``python -m proxies``; the client tries to send a 64 MiB header value
and a 64 MiB request-target, 20 times each, on the inbound listener. The sidecar must
refuse each early (431, 414) and read no further, so its resident memory stays at its
baseline: before, at its peak and after.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.polling import eventually
from tests.ports import free_port
from tests.proxies.conftest import read_until_closed, simple_app

ATTEMPT_BYTES = 64 * 1024 * 1024
PIECE = b"a" * (1024 * 1024)


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


async def oversized(port: int, start: bytes) -> bytes:
    """Send ``start`` then up to 64 MiB more, until the sidecar stops reading; its answer.

    The answer is read while sending: the sidecar closes with a reset once it has discarded
    enough, and a reset makes a later read fail even with the answer already received.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = bytearray()

    async def read() -> None:
        try:
            while data := await reader.read(65536):
                answer.extend(data)
        except ConnectionError:
            pass

    reading = asyncio.create_task(read())
    sent = 0
    try:
        writer.write(start)
        while sent < ATTEMPT_BYTES and not reading.done():
            writer.write(PIECE)
            sent += len(PIECE)
            await asyncio.wait_for(writer.drain(), 5)
    except (ConnectionError, TimeoutError):
        pass  # the sidecar closed the connection
    finally:
        writer.close()
    await asyncio.wait_for(reading, 5)
    return bytes(answer)


async def request(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ok HTTP/1.1\r\nHost: frontend\r\nConnection: close\r\n\r\n")
    data = await read_until_closed(reader)
    writer.close()
    return data


async def test_memory_stays_at_its_baseline_through_64_mib_heads(servers, tmp_path) -> None:
    app = await servers.start(simple_app)
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(json.dumps({"frontend": []}))
    inbound, admin = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxies", "--service", "frontend", "--version", "v1",
        "--app", f"127.0.0.1:{app}", "--endpoints", str(endpoints), "--inbound", f"127.0.0.1:{inbound}",
        "--outbound", f"127.0.0.1:{free_port()}", "--admin", f"127.0.0.1:{admin}", "--log-level", "WARNING",
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    try:

        async def ready() -> bool:
            try:
                return (await request(inbound)).startswith(b"HTTP/1.1 200")
            except OSError:
                return False

        await eventually(ready, 10)
        for _ in range(20):
            await request(inbound)  # warm: the common path has run
        before = rss_kib(process.pid)
        answers = []
        for _ in range(20):
            answers.append(await oversized(inbound, b"GET /a HTTP/1.1\r\nHost: frontend\r\nX-Big: "))
            answers.append(await oversized(inbound, b"GET /"))
        peak = rss_kib(process.pid, "VmHWM")
        after = rss_kib(process.pid)
        print(f"\nsidecar RSS: before {before} KiB, peak {peak} KiB, after {after} KiB")
        answered = [a for a in answers if a]
        assert answered, "no refusal reached the client"
        assert all(a.startswith((b"HTTP/1.1 431 ", b"HTTP/1.1 414 ")) for a in answered), answered[:2]
        assert after - before < 8 * 1024, (before, after)
        assert peak - before < 16 * 1024, (before, peak)
        assert (await request(inbound)).startswith(b"HTTP/1.1 200")
    finally:
        process.terminate()
        await process.wait()
