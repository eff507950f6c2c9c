"""Collector forwarding: does one forwarder task keep up with what the collector ingests?

Baseline (same run, same core): the collector's own ingest rate for the payload of
bench/collector_ingest.py (decode + span pairing + graph increments, no HTTP). Ours: a
``collector.forwarder.Forwarder`` sending the same 512-span exports over loopback to the
cheapest possible backend (an asyncio protocol that reads Content-Length bytes and answers
200), with protobuf exports joined up to 4 MiB (the default) and one export per request
(no joining). A ratio above 1 means forwarding costs less than ingest per span.

    .venv/bin/python bench/collector_forward.py [--exports 400]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from pathlib import Path

from google.protobuf.internal import api_implementation

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.collector_ingest import SPANS_PER_EXPORT, full, payload, rate  # noqa: E402
from bench.results import write_section  # noqa: E402
from collector import otlp_traces  # noqa: E402
from collector.forwarder import Forwarder, ForwarderConfig  # noqa: E402

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"


class Backend(asyncio.Protocol):
    """Reads each request's head, skips its Content-Length body as it streams, answers 200."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.head = bytearray()
        self.body_left = 0

    def data_received(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.body_left:  # skip body bytes without keeping them
                taken = min(self.body_left, len(view))
                self.body_left -= taken
                view = view[taken:]
                if not self.body_left:
                    self.transport.write(RESPONSE)  # type: ignore[attr-defined]
                continue
            self.head += view
            view = memoryview(b"")
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.head[:end]).lower()
            rest = bytes(self.head[end + 4 :])
            self.head.clear()
            self.body_left = int(head.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
            if not self.body_left:
                self.transport.write(RESPONSE)  # type: ignore[attr-defined]
            view = memoryview(rest)


async def forward_rate(body: bytes, exports: int, max_request_bytes: int) -> tuple[float, int]:
    """Spans/s from the first offer to the last 200, and how many requests that took."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Backend, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = ForwarderConfig(
        endpoint=f"http://127.0.0.1:{port}",
        queue_max_bytes=exports * len(body) + 1,
        queue_max_exports=exports + 1,
        max_request_bytes=max_request_bytes,
    )
    forwarder = Forwarder(config)
    await forwarder.start()
    start = time.perf_counter()
    for _ in range(exports):
        assert forwarder.offer("traces", body, "application/x-protobuf", SPANS_PER_EXPORT)
    while forwarder.stats.forwarded["traces"] < exports * SPANS_PER_EXPORT:
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - start
    requests = sum(forwarder.stats.requests.values())
    await forwarder.shutdown()
    server.close()
    await server.wait_closed()
    return exports * SPANS_PER_EXPORT / elapsed, requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exports", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    body = payload().SerializeToString()
    ingest = rate(full(otlp_traces.decode_protobuf), body, args.seconds)
    joined, joined_requests = asyncio.run(forward_rate(body, args.exports, 4 * 1024 * 1024))
    single, single_requests = asyncio.run(forward_rate(body, args.exports, 1))
    print(f"ingest {ingest:,.0f} spans/s; forward joined {joined:,.0f} ({joined_requests} requests), "
          f"one per request {single:,.0f} ({single_requests} requests)")
    lines = [
        "## Collector forwarding",
        "",
        f"`bench/collector_forward.py`, one process, {time.strftime('%Y-%m-%d')}, "
        f"Python {platform.python_version()}, protobuf backend `{api_implementation.Type()}`, "
        f"{os.cpu_count()} CPUs (shared machine, indicative). {args.exports} exports of "
        f"{SPANS_PER_EXPORT} spans ({len(body):,} bytes each) offered at once to a `Forwarder`, "
        "sent over loopback to a minimal asyncio backend in the same process and loop. "
        "Baseline = the collector's ingest of the same export (decode + pairing + graph "
        "increments, bench/collector_ingest.py) measured in this run. Loopback has no round "
        "trip to speak of, so joining shows here in the request count; against a backend "
        "50 ms away, one sender sending one export a request would top out at 20 exports/s.",
        "",
        "| what | spans/s | requests | / ingest |",
        "|---|---:|---:|---:|",
        f"| ingest (baseline) | {ingest:,.0f} | | 1.00 |",
        f"| forward, joined up to 4 MiB | {joined:,.0f} | {joined_requests} | {joined / ingest:.1f} |",
        f"| forward, one export a request | {single:,.0f} | {single_requests} | {single / ingest:.1f} |",
        "",
    ]
    write_section("\n".join(lines))


if __name__ == "__main__":
    main()
