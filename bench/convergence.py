"""Config convergence: from a revision's 201 to every sidecar's ACK recorded by meshui.

    .venv/bin/python bench/convergence.py [--sizes 100,1000] [--rounds 10] [--no-follow]

Part 1 starts a real meshui (uvicorn, embedded Valkey, SQLite, no sidecars of the demo) and N
control clients built from the sidecar's own ``ControlClient`` (many per worker process),
waits until all are registered and quiet, then writes ``--rounds`` revisions through the
API. Each ACK's time is the ``since`` meshui recorded for it (``/api/v1/proxies``), so the
latency is commit -> push -> sidecar validation -> ACK -> database, measured from the 201.
meshui's CPU per pushed revision is its utime+stime over the round (from the POST to the last
worker seeing every client on the revision), less the idle rate of the same mesh (heartbeats)
measured just before. The baseline of the same run is one websocket round trip to the same
server (a ``hello`` answered by ``welcome``), the floor any push has to pay.

Part 2 (``--no-follow`` skips it) runs the demo's real sidecars (frontend -> catalog v1|v2
-> inventory) with a thread sending GET / through frontend back to back, flips the catalog
split between all-v1 and all-v2, and times from the 201 to the first response served by the
new version.

Goals (issue 8): p99 <= 0.2 s at N=100 and <= 1 s at N=1000 (Istio's anchor: 500 sidecars
in under 1 s); the first request on the new weights p95 <= 0.1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import write_section  # noqa: E402
from meshui.demo.mesh import Mesh, MeshConfig  # noqa: E402
from meshui.demo.processes import free_port, free_port_block  # noqa: E402
from meshui.demo.topology import Instance  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
CLIENTS_PER_WORKER = 250


# -- the worker: many ControlClients in one process ----------------------------------------

async def run_worker(url: str, token: str, first: int, count: int) -> None:
    from proxies.control.client import ControlClient
    from proxies.mesh.endpoints import EndpointRegistry

    clients = []
    for n in range(first, first + count):
        hello = {"proxy_id": f"bench-{n}", "service": "bench", "version": "v1",
                 "address": f"127.0.0.{1 + n // 60000}:{1024 + n % 60000}"}
        client = ControlClient(url, token, hello, EndpointRegistry(), lambda: {},
                               backoff_max=1.0)
        client.start()
        clients.append(client)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("started", flush=True)
    while line := (await reader.readline()).decode().strip():
        command, _, value = line.partition(" ")
        if command == "connected":
            while sum(c.state == "connected" for c in clients) < count:
                await asyncio.sleep(0.05)
        elif command == "expect":
            revision = int(value)
            waiting, applied = set(clients), []
            while waiting:
                for client in [c for c in waiting if c.config_revision == revision]:
                    waiting.discard(client)
                    applied.append(time.time())
                await asyncio.sleep(0.002)
            line += f" {min(applied):.4f} {max(applied):.4f}"
        print(f"done {line}", flush=True)


# -- part 1 --------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Workers:
    def __init__(self, url: str, token: str, total: int) -> None:
        self.procs = []
        for first in range(0, total, CLIENTS_PER_WORKER):
            count = min(CLIENTS_PER_WORKER, total - first)
            self.procs.append(subprocess.Popen(
                [sys.executable, __file__, "--worker", url, token, str(first), str(count)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT))
        self.ask("")  # each says "started"

    def ask(self, command: str) -> list[str]:
        """Send ``command`` to every worker; their answers (``done COMMAND ...``)."""
        answers = []
        for proc in self.procs:
            assert proc.stdin and proc.stdout
            if command:
                proc.stdin.write(command + "\n")
                proc.stdin.flush()
        for proc in self.procs:
            assert proc.stdout
            line = proc.stdout.readline()
            if not line:
                raise SystemExit(f"a worker died (exit {proc.wait()})")
            answers.append(line.strip())
        return answers

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def join_token(mesh: Mesh, service: str) -> str:
    """A join token for ``service``'s clients, made as any harness makes one:
    ``manage.py join_token`` against the mesh's database (docs/security.md)."""
    return subprocess.run(
        [sys.executable, "manage.py", "join_token", "--service", service,
         "--description", "bench/convergence.py"], cwd=ROOT, env={**os.environ, **mesh.child_env()},
        check=True, capture_output=True, text=True).stdout.strip()


def api(mesh: Mesh, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {mesh.demo_token()}"}
    return httpx.request(method, f"{mesh.config.dashboard_url}api/v1/{path}", headers=headers,
                         timeout=60, trust_env=False, **kwargs)


async def hello_round_trip(mesh: Mesh, samples: int = 50) -> list[float]:
    """The baseline: a websocket hello answered by welcome, on the same server."""
    import websockets

    url = f"ws://{mesh.config.host}:{mesh.config.meshui_port}/api/v1/control"
    headers = {"Authorization": f"Bearer {join_token(mesh, 'baseline')}"}
    times = []
    async with websockets.connect(url, additional_headers=headers, proxy=None) as ws:
        for n in range(samples):
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "heartbeat", "state": {}}) if n else json.dumps(
                {"type": "hello", "proxy_id": "baseline", "service": "baseline",
                 "address": "127.0.0.9:1"}))
            if n == 0:  # welcome (then trust_bundle and endpoints, read by the next rounds)
                while json.loads(await ws.recv())["type"] != "welcome":
                    pass
            else:
                # A heartbeat gets no answer; an unknown type gets an error frame: a round trip.
                await ws.send(json.dumps({"type": "ping?"}))
                while json.loads(await ws.recv())["type"] != "error":
                    pass
            times.append(time.perf_counter() - started)
    return times[1:]


def converge(mesh: Mesh, size: int, rounds: int) -> dict[str, Any]:
    url = f"ws://{mesh.config.host}:{mesh.config.meshui_port}/api/v1/control"
    started = time.monotonic()
    # Every client is a sidecar of the service "bench": one join token for them all.
    workers = Workers(url, join_token(mesh, "bench"), size)
    try:
        workers.ask("connected")
        print(f"N={size}: all clients connected", file=sys.stderr)
        while api(mesh, "GET", "proxies").json()["summary"]["total"] < size:
            time.sleep(0.5)
        connect_s = time.monotonic() - started
        # The connection storm pushed endpoints snapshots of up to N instances to N clients:
        # measure once every client runs the last one, not while they still parse the backlog.
        deadline = time.monotonic() + 300
        while True:
            states = Counter(p["endpoints"]["state"]
                             for p in api(mesh, "GET", "proxies").json()["proxies"]
                             if p["connected"])
            if states["SYNCED"] == sum(states.values()):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"N={size}: the endpoints never settled: {dict(states)}")
            print(f"N={size}: endpoints {dict(states)}", file=sys.stderr)
            time.sleep(2)
        print(f"N={size}: endpoints settled {time.monotonic() - started:.1f} s after the "
              "first connect", file=sys.stderr)
        time.sleep(3)
        pid = mesh.supervisor.child("meshui").process.pid
        idle_from, idle_cpu = time.monotonic(), cpu_seconds(pid)
        time.sleep(3)
        idle_rate = (cpu_seconds(pid) - idle_cpu) / (time.monotonic() - idle_from)
        latencies, cpu_per_revision, missing = [], [], 0
        for n in range(rounds):
            parent = api(mesh, "GET", "policy").json()["revision"]
            document = {"default": {"timeouts": {"request_ms": 10000 + n}}}
            cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
            response = api(mesh, "POST", "policy/revisions", json={
                "document": document, "parent": parent, "message": f"round {n}"})
            assert response.status_code == 201, response.text
            revision = response.json()["revision"]
            # From the revision's own time (stamped in its transaction, before the commit and
            # the push): the ACKs can land before the 201 even reaches this client.
            created = parse_time(response.json()["created_at"])
            print(f"N={size}: revision {revision} created", file=sys.stderr)
            applied = [line.split()[-2:] for line in workers.ask(f"expect {revision}")]
            print(f"N={size}: revision {revision}: clients applied it from "
                  f"{min(float(a) for a, _ in applied) - created:.3f} s to "
                  f"{max(float(b) for _, b in applied) - created:.3f} s", file=sys.stderr)
            cpu = cpu_seconds(pid) - cpu_before - idle_rate * (time.monotonic() - wall_before)
            cpu_per_revision.append(cpu)
            deadline = time.monotonic() + 90
            while True:
                state = api(mesh, "GET", "proxies").json()
                if state["summary"]["synced"] >= size or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            acks = [parse_time(p["config"]["since"]) - created for p in state["proxies"]
                    if p["proxy_id"].startswith("bench-") and p["config"]["state"] == "SYNCED"]
            if len(acks) < size:  # every client ran it; meshui had not recorded every ACK yet
                print(f"N={size}: only {len(acks)} of {size} ACKs recorded within 90 s",
                      file=sys.stderr)
                missing += size - len(acks)
            if acks:
                print(f"N={size}: revision {revision}: p50 {statistics.median(acks):.3f} s, "
                      f"p99 {percentile(acks, 0.99):.3f} s, {sum(a > 1 for a in acks)} over 1 s",
                      file=sys.stderr)
            latencies.extend(acks)
        return {"size": size, "connect_s": connect_s, "latencies": latencies,
                "cpu": cpu_per_revision, "idle_rate": idle_rate, "missing": missing}
    finally:
        workers.stop()


def part_one(sizes: list[int], rounds: int) -> tuple[list[dict[str, Any]], list[float]]:
    results = []
    baseline: list[float] = []
    for size in sizes:
        workdir = Path(tempfile.mkdtemp(prefix="meshui-convergence-"))
        config = replace(
            MeshConfig(), meshui_port=free_port(), collector_port=free_port(),
            collector_grpc_port=free_port(), base_port=free_port_block(10), instances=(),
            run_load=False, run_celery=False,
            trace_sample=0.0, data_dir=workdir, log_dir=workdir / "log", policy_file=None,
            database_url=f"sqlite:///{workdir / 'meshui.sqlite3'}",
        )
        mesh = Mesh(config, say=lambda line: print(line, file=sys.stderr))
        try:
            mesh.start()
            if not baseline:
                baseline = asyncio.run(hello_round_trip(mesh))
            results.append(converge(mesh, size, rounds))
            print(f"N={size}: p99 {percentile(results[-1]['latencies'], 0.99):.3f} s",
                  file=sys.stderr)
        finally:
            mesh.stop()
    return results, baseline


# -- part 2 --------------------------------------------------------------------------------

def part_two(samples: int) -> list[float]:
    workdir = Path(tempfile.mkdtemp(prefix="meshui-follow-"))
    (workdir / "policy.yaml").write_text("services:\n  catalog:\n    split: {v1: 100, v2: 0}\n")
    config = replace(
        MeshConfig(), meshui_port=free_port(), collector_port=free_port(), collector_grpc_port=free_port(),
        base_port=free_port_block(40),
        instances=(Instance("frontend", "v1"), Instance("catalog", "v1"),
                   Instance("catalog", "v2"), Instance("inventory", "v1")),
        run_load=False, run_celery=False, trace_sample=0.0, data_dir=workdir,
        log_dir=workdir / "log", policy_file=workdir / "policy.yaml",
        database_url=f"sqlite:///{workdir / 'meshui.sqlite3'}",
    )
    mesh = Mesh(config, say=lambda line: print(line, file=sys.stderr))
    served: list[tuple[float, str]] = []
    stop = threading.Event()

    def load() -> None:
        url = config.inbound_url("frontend") + "/"
        with httpx.Client(timeout=10, trust_env=False) as client:
            while not stop.is_set():
                (call,) = client.get(url).json()["calls"]
                served.append((time.time(), call["instance"]))

    delays = []
    try:
        mesh.start()
        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        for n in range(samples):
            target = "v2" if n % 2 == 0 else "v1"
            parent = api(mesh, "GET", "policy").json()["revision"]
            time.sleep(0.3)
            sent_from = len(served)
            response = api(mesh, "PATCH", "policy/services/catalog", json={
                "patch": {"split": {target: 100, "v1" if target == "v2" else "v2": 0}},
                "parent": parent})
            created = time.time()
            assert response.status_code == 201, response.text
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                hit = next((t for t, who in served[sent_from:]
                            if who == f"catalog-{target}" and t >= created), None)
                if hit is not None:
                    delays.append(hit - created)
                    break
                time.sleep(0.005)
            else:
                raise SystemExit(f"no request reached catalog {target} within 10 s")
        stop.set()
        thread.join(timeout=10)
    finally:
        mesh.stop()
    return delays


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, token, first, count = sys.argv[2:6]
        asyncio.run(run_worker(url, token, int(first), int(count)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--follow-samples", type=int, default=20)
    parser.add_argument("--no-follow", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results, baseline = part_one(sizes, args.rounds)
    base = statistics.median(baseline)
    lines = ["## Config convergence", "",
             f"Baseline: one control-channel round trip to the same meshui, p50 "
             f"{base * 1000:.2f} ms ({len(baseline)} samples).", "",
             "| sidecars | revisions | ACKs | p50 | p99 | max | p99 / round trip | goal | "
             "meshui CPU per revision | connect all |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lat, goal = r["latencies"], 0.2 if r["size"] <= 100 else 1.0
        p99 = percentile(lat, 0.99)
        lines.append(
            f"| {r['size']} | {args.rounds} | {len(lat)} | {statistics.median(lat) * 1000:.0f} ms "
            f"| {p99 * 1000:.0f} ms | {max(lat) * 1000:.0f} ms | {p99 / base:.0f}x "
            f"| {'meets' if p99 <= goal else 'MISSES'} p99 <= {goal:g} s "
            f"| {statistics.median(r['cpu']) * 1000:.0f} ms "
            f"({statistics.median(r['cpu']) / r['size'] * 1e6:.0f} µs per sidecar) "
            f"| {r['connect_s']:.1f} s |"
            + (f" {r['missing']} ACKs not recorded within 90 s |" if r["missing"] else ""))
    if not args.no_follow:
        delays = part_two(args.follow_samples)
        p95 = percentile(delays, 0.95)
        lines += ["", "First request on the new weights (the demo's real sidecars, GET / back to "
                  f"back through frontend, {len(delays)} split flips): p50 "
                  f"{statistics.median(delays) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max "
                  f"{max(delays) * 1000:.0f} ms; {'meets' if p95 <= 0.1 else 'MISSES'} the goal "
                  "(p95 <= 0.1 s)."]
    lines += ["", "The ACK latency is meshui's recorded ACK time minus the revision's created_at "
              "(stamped in its transaction, just before the commit; the ACKs often land before "
              "the 201 reaches the client). CPU per revision is meshui's utime+stime from the POST "
              "until every "
              "client ran the revision, less its idle rate (heartbeats). 2-core VM, the clients "
              "share it with meshui."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
