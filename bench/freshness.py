"""Freshness: from a request passing a sidecar to its edge count changing on the dashboard.

Starts a small real mesh (frontend -> catalog -> inventory behind sidecars, collector,
dashboard, embedded Valkey), opens the dashboard's websocket as a browser would, then
sends one request at a time and times how long until the websocket shows the
``unknown -> frontend`` edge count go up. The baseline, measured in the same run, is how
long until the graph API (a direct Redis read) shows it: the difference is what the live
push path (publisher, channel layer, throttles) costs. Goal: websocket p95 <= 2 s.

    .venv/bin/python bench/freshness.py [--samples 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import write_section  # noqa: E402
from meshui.demo.mesh import Mesh, MeshConfig  # noqa: E402
from meshui.demo.processes import free_port, free_port_block  # noqa: E402
from meshui.demo.topology import Instance  # noqa: E402

EDGE = ("unknown", "frontend")


def edge_requests(graph: dict) -> int:
    for edge in graph["edges"]:
        if (edge["source"], edge["target"]) == EDGE:
            return int(edge["requests"])
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def measure(config: MeshConfig, samples: int) -> tuple[list[float], list[float]]:
    ws_url = f"ws://{config.host}:{config.meshui_port}/ws/graph"
    api = f"{config.dashboard_url}api/v1/graph"
    frontend = config.inbound_url("frontend")
    ws_delays: list[float] = []
    api_delays: list[float] = []
    async with websockets.connect(ws_url, origin=config.dashboard_url.rstrip("/")) as socket, \
            httpx.AsyncClient(trust_env=False, timeout=10) as client:
        latest = 0

        async def next_count_above(threshold: int, deadline: float) -> float | None:
            nonlocal latest
            while time.perf_counter() < deadline:
                try:
                    raw = await asyncio.wait_for(socket.recv(), deadline - time.perf_counter())
                except TimeoutError:
                    return None
                latest = edge_requests(json.loads(raw)["graph"])
                if latest > threshold:
                    return time.perf_counter()
            return None

        async def api_count_above(threshold: int, deadline: float) -> float | None:
            while time.perf_counter() < deadline:
                graph = (await client.get(api, params={"window": 60})).json()
                if edge_requests(graph) > threshold:
                    return time.perf_counter()
                await asyncio.sleep(0.02)
            return None

        for _ in range(samples):
            before = edge_requests((await client.get(api, params={"window": 60})).json())
            # Drain what is queued so `latest` is current.
            while True:
                try:
                    latest = edge_requests(json.loads(await asyncio.wait_for(socket.recv(), 0.05))["graph"])
                except TimeoutError:
                    break
            sent = time.perf_counter()
            response = await client.get(frontend + "/", headers={"host": "frontend"})
            response.raise_for_status()
            deadline = sent + 10
            seen_api, seen_ws = await asyncio.gather(api_count_above(before, deadline),
                                                     next_count_above(before, deadline))
            if seen_ws is None or seen_api is None:
                raise SystemExit("an update never arrived within 10 s")
            ws_delays.append(seen_ws - sent)
            api_delays.append(seen_api - sent)
    return ws_delays, api_delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="meshui-freshness-"))
    config = replace(
        MeshConfig(), meshui_port=free_port(), collector_port=free_port(), collector_grpc_port=free_port(),
        base_port=free_port_block(30),
        instances=(Instance("frontend", "v1"), Instance("catalog", "v1"), Instance("inventory", "v1")),
        run_load=False, run_celery=False, trace_sample=0.0, log_dir=workdir / "log", policy_file=None,
        database_url=f"sqlite:///{workdir / 'meshui.sqlite3'}",
    )
    mesh = Mesh(config, say=lambda line: print(line, file=sys.stderr))
    try:
        mesh.start()
        ws, api = asyncio.run(measure(config, args.samples))
    finally:
        mesh.stop()
    rows = [
        ("graph API (direct Redis read), baseline", api),
        ("dashboard websocket", ws),
    ]
    lines = ["## Freshness", "", "| path | p50 | p95 | max |", "|---|---|---|---|"]
    for name, values in rows:
        lines.append(f"| {name} | {statistics.median(values):.2f} s | {percentile(values, 0.95):.2f} s "
                     f"| {max(values):.2f} s |")
    ratio = percentile(ws, 0.95) / percentile(api, 0.95)
    verdict = "meets" if percentile(ws, 0.95) <= 2.0 else "MISSES"
    lines.append("")
    lines.append(f"{args.samples} samples, one request each through frontend's sidecar. Websocket p95 is "
                 f"{ratio:.2f}x the API's; it {verdict} the goal (p95 <= 2 s).")
    text = "\n".join(lines)
    print(text)
    write_section(text)


if __name__ == "__main__":
    main()
