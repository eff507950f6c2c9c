"""The OTLP/HTTP listener's head limit: 431 or a closed connection, memory flat, bodies unaffected."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.receiver import ReceiverConfig
from tests.collector.otlp_build import spans
from tests.collector.support import ahttp, running_collector
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
BODY = spans("web", [{"trace": 1, "span": 1}]).SerializeToString()


def request_with_header(port: int, header_bytes: int, body: bytes = BODY) -> bytes:
    """Send one POST whose X-Pad header is ``header_bytes`` long; return the response (b"" if cut)."""
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(body)}\r\nX-Pad: {'a' * header_bytes}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(head + body)
            return sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            return b""


def flood_header(port: int, total: int = 64 << 20) -> tuple[bytes, int]:
    """Stream one header of ``total`` bytes until the server stops us; (response, bytes sent)."""
    chunk = b"a" * (1 << 20)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Big: ")
            while sent < total:
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            return sock.recv(65536), sent
        except (ConnectionResetError, TimeoutError):
            return b"", sent


async def test_a_head_under_the_limit_passes_and_one_over_gets_431(redis_url: str) -> None:
    receiver = ReceiverConfig(port=0, max_header_bytes=16 * 1024)
    async with running_collector(redis_url, receiver=receiver) as collector:
        port = collector.port
        assert port is not None
        ok = await asyncio.to_thread(request_with_header, port, 12 * 1024)
        assert ok.startswith(b"HTTP/1.1 200 ")
        refused = await asyncio.to_thread(request_with_header, port, 40 * 1024)
        assert refused == b"" or refused.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        assert collector.stats.requests[431] == 1
        # A body many times the head limit is not a head: it is read as usual.
        big = spans("web", [{"trace": i, "span": i} for i in range(1, 20_000)]).SerializeToString()
        assert len(big) > 20 * receiver.max_header_bytes
        status, _, _ = await ahttp(
            "POST", f"http://127.0.0.1:{port}/v1/traces", big, {"Content-Type": "application/x-protobuf"}
        )
        assert status == 200


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert match, status
    return int(match.group(1))


@pytest.fixture
def collector_process(redis_url: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``python -m collector`` as its own process on a free port."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "collector", "--http-port", "0", "--grpc-port", "0", "--redis-url", redis_url],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr = process.stderr
    assert stderr is not None

    def listening_port() -> int:
        """The port of the "listening on" line, 0 for any other line (readline blocks)."""
        line = stderr.readline()
        if not line and process.poll() is not None:
            raise AssertionError(f"the collector exited with {process.returncode} before listening")
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        return int(found.group(1)) if found else 0

    port = wait_until(listening_port, timeout=30.0, interval=0.0, what="the collector to listen")
    try:
        yield process, port
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_twenty_64_mib_headers_against_a_real_collector_get_431_or_a_close_and_memory_stays_flat(
    collector_process: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = collector_process
    flood_header(port)  # warm up: the first refusal's code paths and buffers
    before = rss_kib(process.pid)
    sent_each = []
    for _ in range(20):
        response, sent = flood_header(port)
        assert response == b"" or response.startswith(b"HTTP/1.1 431 "), response[:80]
        sent_each.append(sent)
    after = rss_kib(process.pid)
    print(f"collector RSS before {before} KiB, after 20 x 64 MiB headers {after} KiB; sent {sent_each} bytes")
    # The server stopped reading long before 64 MiB (what it sent on was the kernel's buffers).
    assert max(sent_each) < 64 << 20
    assert after - before < 16 * 1024, (before, after)
    assert request_with_header(port, 100).startswith(b"HTTP/1.1 200 ")  # still serving
