"""Benchmark: the sidecar's TLS layer against the event loop's TLS, per record, in the same run.

    .venv/bin/python bench/tls_layer.py [--messages 500,3000] [--rounds 5] [--timed-messages 50000]

An echo server on uvloop answers each 150-byte message of one client connection with the
same bytes (one TLS record each way on a mesh hop), three ways:

- ``plain``: no TLS (the floor);
- ``loop``: the loop's TLS (``create_server(ssl=...)``) with a BufferedProtocol reading into
  one buffer, as the sidecar's connections were before ``proxies/dataplane/tls.py``;
- ``ours``: ``proxies.dataplane.tls.TlsTransport`` over a plain TCP transport, as the sidecar
  runs it (records decrypted into one buffer, handed to the connection in the same call).

The client is the loop's TLS client in every TLS case, so only the server differs. Two
measures: instructions per message under valgrind's callgrind (the difference between two
runs of different lengths, so start-up cancels; repeatable whatever else the machine does),
and the server's CPU per message in interleaved rounds (server on CPU 0, client on CPU 1).
Certificates as bench/sidecar_mtls.py's (ECDSA P-256, TLS 1.3, client certificate required).
Writes ``## TLS layer`` in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import paired_ratios, report  # type: ignore[import-not-found]
from sidecar_hop import (  # type: ignore[import-not-found]
    LOAD_CPU,
    PROXY_CPU,
    PY,
    ROOT,
    TICKS,
    cpu_ticks,
    free_port,
    wait_port,
)
from sidecar_mtls import make_identities  # type: ignore[import-not-found]

MODES = ("plain", "loop", "ours")
MESSAGE = b"x" * 150


def context(directory: Path, server: bool) -> ssl.SSLContext:
    from proxies.identity.tls import build_context

    name = "upstream" if server else "client"
    return build_context(server, (directory / f"{name}.crt").read_bytes(),
                         (directory / f"{name}.key").read_bytes(), (directory / "bundle.pem").read_text())


# the two processes ---------------------------------------------------------------------------


def serve(mode: str, port: int, directory: Path) -> None:
    """Echo on ``port`` until the first connection closes, then exit (callgrind dumps then)."""
    import uvloop

    from proxies.dataplane.tls import TlsTransport

    buffer = memoryview(bytearray(65536))

    class Echo(asyncio.Protocol):
        used = False  # wait_port's probe connects and goes without a byte

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes | memoryview) -> None:
            self.used = True
            self.transport.write(bytes(data))  # type: ignore[attr-defined]

        def connection_lost(self, exc: Exception | None) -> None:
            if self.used:
                os._exit(0)

    class BufferedEcho(Echo, asyncio.BufferedProtocol):
        def get_buffer(self, sizehint: int) -> memoryview:
            return buffer

        def buffer_updated(self, nbytes: int) -> None:
            self.data_received(buffer[:nbytes])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if mode == "plain":
            await loop.create_server(Echo, "127.0.0.1", port)
        elif mode == "loop":
            await loop.create_server(BufferedEcho, "127.0.0.1", port, ssl=context(directory, True))
        else:
            server_context = context(directory, True)
            await loop.create_server(
                lambda: TlsTransport(loop, server_context, True, Echo, buffer), "127.0.0.1", port)
        await asyncio.Event().wait()

    uvloop.run(main())


def client(mode: str, port: int, directory: Path, messages: int) -> None:
    import uvloop

    class PingPong(asyncio.Protocol):
        def __init__(self, done: asyncio.Future[None]) -> None:
            self.done, self.left = done, messages
            self.closed = asyncio.get_running_loop().create_future()

        def connection_lost(self, exc: Exception | None) -> None:
            self.closed.set_result(None)

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            transport.write(MESSAGE)  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            self.left -= 1
            if self.left:
                self.transport.write(MESSAGE)
            elif not self.done.done():
                self.done.set_result(None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        transport, protocol = await loop.create_connection(
            lambda: PingPong(done), "127.0.0.1", port,
            ssl=None if mode == "plain" else context(directory, False),
            server_hostname=None if mode == "plain" else "upstream")
        await done
        transport.close()
        await protocol.closed  # the close_notify and FIN are out before the loop closes

    uvloop.run(main())


# the measures --------------------------------------------------------------------------------


def run_pair(mode: str, directory: Path, messages: int, callgrind: Path | None) -> tuple[int, float]:
    """(server CPU ticks, client wall seconds) of one echo run of ``messages``."""
    port = free_port()
    prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind}"] if callgrind else []
    server = subprocess.Popen(
        ["taskset", "-c", PROXY_CPU, *prefix, PY, __file__, "--serve", mode, str(port), str(directory)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"})  # the same dict layouts every run
    try:
        wait_port(port, timeout=120)
        before = cpu_ticks(server.pid)
        start = time.perf_counter()
        subprocess.run(["taskset", "-c", LOAD_CPU, PY, __file__, "--client", mode, str(port), str(directory),
                        str(messages)], cwd=ROOT, check=True)
        wall = time.perf_counter() - start
        used = cpu_ticks(server.pid) - before if not callgrind else 0
        server.wait(timeout=300)
        return used, wall
    finally:
        if server.poll() is None:
            server.kill()


def instructions(path: Path) -> int:
    text = path.read_text(errors="replace")
    match = re.search(r"^summary:\s*(\d+)", text, re.M) or re.search(r"^totals:\s*(\d+)", text, re.M)
    if not match:
        raise RuntimeError(f"no instruction total in {path}")
    return int(match[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", default="500,3000", help="the two callgrind run lengths")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timed-messages", type=int, default=50000)
    parser.add_argument("--no-callgrind", action="store_true", help="only the timed rounds")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), Path(args.serve[2]))
        return
    if args.client:
        client(args.client[0], int(args.client[1]), Path(args.client[2]), int(args.client[3]))
        return

    tmp = Path(tempfile.mkdtemp(prefix="tls-layer-"))
    make_identities(tmp, ["client", "upstream"])
    short, long = (int(n) for n in args.messages.split(","))
    per_message: dict[str, float] = {}
    if shutil.which("valgrind") and not args.no_callgrind:
        for mode in MODES:
            counts = []
            for messages in (short, long):
                out = tmp / f"callgrind-{mode}-{messages}.out"
                run_pair(mode, tmp, messages, out)
                counts.append(instructions(out))
            per_message[mode] = (counts[1] - counts[0]) / (long - short)
            print(f"callgrind {mode:5s} {per_message[mode]:8.0f} instructions a message", flush=True)
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    for round_no in range(args.rounds):
        order = MODES if round_no % 2 == 0 else tuple(reversed(MODES))
        for mode in order:
            ticks, wall = run_pair(mode, tmp, args.timed_messages, None)
            cpu[mode].append(ticks / TICKS / args.timed_messages * 1e6)
            print(f"round {round_no + 1} {mode:5s} server {cpu[mode][-1]:5.2f} µs a message, "
                  f"{args.timed_messages / wall:7.0f} messages/s", flush=True)
    write(args, per_message, cpu)


def write(args: argparse.Namespace, per_message: dict[str, float], cpu: dict[str, list[float]]) -> None:
    median = {mode: statistics.median(values) for mode, values in cpu.items()}
    lines = [
        "## TLS layer",
        "",
        f"`bench/tls_layer.py`, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores; a TLS 1.3 echo "
        "server on uvloop (CPU 0) answering one client connection's 150-byte messages (CPU 1), one "
        "record each way: `plain` no TLS, `loop` the event loop's TLS (a BufferedProtocol), `ours` "
        "proxies/dataplane/tls.py. Instructions: valgrind callgrind, the difference between runs of "
        f"{args.messages.replace(',', ' and ')} messages. CPU: the server's, {args.rounds} interleaved "
        f"rounds of {args.timed_messages} messages, medians.",
        "",
        "| server | instructions a message | TLS's instructions (minus plain) | CPU a message (µs) "
        "| per round (µs) |",
        "|---|---|---|---|---|",
    ]
    for mode in MODES:
        count = per_message.get(mode)
        tls = "-" if mode == "plain" or count is None else f"{count - per_message['plain']:,.0f}"
        lines.append(f"| {mode} | {'-' if count is None else f'{count:,.0f}'} | {tls} | {median[mode]:.2f} | "
                     + ", ".join(f"{v:.2f}" for v in cpu[mode]) + " |")
    ratios = paired_ratios(cpu["ours"], cpu["loop"])
    lines.append("")
    if per_message:
        plain, loop, ours = (per_message[mode] for mode in MODES)
        lines.append(
            f"Ours against the loop's TLS: {ours / loop:.3f}x the instructions a message, "
            f"{(ours - plain) / (loop - plain):.3f}x TLS's own; CPU a message "
            f"{statistics.median(ratios):.3f}x (per round {min(ratios):.2f}..{max(ratios):.2f}).")
    report(lines, not args.no_write)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
