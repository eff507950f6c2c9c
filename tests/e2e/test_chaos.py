"""Chaos through real processes: a part of the mesh dies while load runs, and the mesh copes.

One small mesh (frontend -> catalog v1|v2 -> inventory, each behind its sidecar) on an
embedded Valkey that can be restarted. A thread sends steady traffic through the frontend's
sidecar while, in turn:

- the collector is killed (SIGKILL) and started again: requests are unaffected, the sidecars'
  memory stays bounded and what they could not export is counted;
- Redis is restarted: the graph API and the live socket come back within 5 s, and the edge
  counts are exact (nothing answered 200 lost, nothing counted twice);
- meshui is killed (a crash, and a clean stop that closes every control connection) and
  started again: every request succeeds, every sidecar is SYNCED again, and no sidecar is ever
  sent an endpoints set missing instances that were live.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import websockets

from meshui.demo.mesh import Mesh
from meshui.demo.topology import Instance
from tests.e2e.meshes import small_mesh
from tests.polling import eventually, settled, wait_until

INSTANCES = (Instance("frontend", "v1"), Instance("catalog", "v1"), Instance("catalog", "v2"),
             Instance("inventory", "v1"))
PROXY_IDS = {f"{i.service}-{i.version}-{n}" for n, i in enumerate(INSTANCES)}
EDGE = ("frontend", "catalog")
# A heartbeat interval longer than the sidecars' longest reconnect backoff (5 s), so after a
# restart meshui's settle hold ends because every known instance said hello again.
HEARTBEAT_S = 8


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    with small_mesh(tmp_path_factory.mktemp("chaos"), "chaos", INSTANCES,
                    extra_env=(("MESHUI_HEARTBEAT_INTERVAL", str(HEARTBEAT_S)),)) as mesh:
        yield mesh


class Load:
    """Steady GET / through the frontend's sidecar from a thread; every outcome kept."""

    def __init__(self, mesh: Mesh, rps: float = 25.0) -> None:
        self.url = mesh.config.inbound_url("frontend") + "/"
        self.interval = 1.0 / rps
        self.outcomes: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10, trust_env=False) as client:
            while not self._stop.wait(self.interval):
                try:
                    self.outcomes.append(client.get(self.url, headers={"host": "frontend"}).status_code)
                except httpx.HTTPError as exc:
                    self.outcomes.append(type(exc).__name__)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def failures(self) -> list[int | str]:
        return [o for o in self.outcomes if o != 200]


def api(mesh: Mesh, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{mesh.config.dashboard_url}api/v1/{path}", params=params, timeout=5, trust_env=False)


def edge_count(mesh: Mesh) -> int | None:
    """Requests on frontend -> catalog over the live hour, or None if the API cannot say."""
    try:
        response = api(mesh, "graph", window=3600)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    for edge in response.json()["edges"]:
        if (edge["source"], edge["target"]) == EDGE:
            return int(edge["requests"])
    return 0


def settled_edge_count(mesh: Mesh, quiet: float = 3.0, timeout: float = 40.0) -> int:
    """The edge count once it stopped changing for ``quiet`` s (telemetry in flight landed)."""
    count = settled(lambda: edge_count(mesh), quiet, timeout, interval=0.25, what="frontend -> catalog")
    assert count is not None  # settled never settles on None (the API not answering)
    return count


def sidecar_metric(mesh: Mesh, index: int, prefix: str) -> float:
    """The sum of the sidecar's Prometheus samples whose line starts with ``prefix``."""
    url = f"http://{mesh.config.host}:{mesh.config.ports(index).admin}/metrics"
    text = httpx.get(url, timeout=5, trust_env=False).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(pid)


def all_synced(mesh: Mesh, since: datetime | None = None) -> bool:
    """Every sidecar connected (with a hello after ``since``, if given) and SYNCED.

    After a crash the rows still say connected and SYNCED to the old version; ``since``
    makes the check mean "came back and acked what the new process sent".
    """
    try:
        rows = api(mesh, "instances").json()["instances"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    live = {r["proxy_id"]: r["sync"] for r in rows if r["connected"] and (
        since is None or datetime.fromisoformat(r["connected_at"].replace("Z", "+00:00")) > since)}
    return PROXY_IDS <= set(live) and all(live[p] == "SYNCED" for p in PROXY_IDS)


def test_the_collector_killed_leaves_requests_unaffected_and_drops_counted(mesh: Mesh) -> None:
    sidecar = mesh.supervisor.child("sidecar-frontend-v1-0").process.pid
    errors_before = sidecar_metric(mesh, 0, 'meshui_telemetry_export_errors_total{signal="metrics"}')
    with Load(mesh) as load:
        rss_before = rss_kib(sidecar)
        mesh.kill("collector")
        wait_until(
            lambda: sidecar_metric(mesh, 0, 'meshui_telemetry_export_errors_total{signal="metrics"}')
            >= errors_before + 3, timeout=20, what="three failed metrics exports")
        rss_down = rss_kib(sidecar)
        mesh.start_again("collector")
        exported = sidecar_metric(mesh, 0, 'meshui_telemetry_exported_total{signal="metrics"}')
        wait_until(
            lambda: sidecar_metric(mesh, 0, 'meshui_telemetry_exported_total{signal="metrics"}') > exported,
            timeout=20, what="a metrics export to the restarted collector")
    assert load.outcomes and load.failures() == [], load.failures()
    # A few seconds of backlog is a few hundred KiB at most; a leak would be megabytes.
    assert rss_down - rss_before < 8 * 1024, (rss_before, rss_down)


def test_a_redis_restart_comes_back_within_5_s_with_exact_counts(mesh: Mesh) -> None:
    before = settled_edge_count(mesh)
    with Load(mesh) as load:
        wait_until(lambda: len(load.outcomes) >= 25, timeout=20, what="25 requests of load")
        mesh.restart_redis()
        restarted = time.monotonic()
        wait_until(lambda: edge_count(mesh) is not None, timeout=5, what="the graph API")
        api_back = time.monotonic() - restarted
        socket_back = asyncio.run(graph_socket_delivers(mesh, timeout=5))
        wait_until(lambda: len(load.outcomes) >= 50, timeout=20, what="50 requests of load")
    assert load.failures() == [], load.failures()
    assert api_back <= 5 and socket_back <= 5
    # Every request the load sent went frontend -> catalog once.
    assert settled_edge_count(mesh) == before + len(load.outcomes)


async def graph_socket_delivers(mesh: Mesh, timeout: float) -> float:
    """Seconds until the live-graph socket hands over a graph (reconnecting as a page would)."""
    started = time.monotonic()
    url = f"ws://{mesh.config.host}:{mesh.config.meshui_port}/ws/graph"
    origin = f"http://{mesh.config.host}:{mesh.config.meshui_port}"

    async def a_graph_arrives() -> bool:
        """One connection: True once it hands over a graph with edges, False if it cannot."""
        try:
            async with websockets.connect(url, origin=origin, open_timeout=2) as socket:
                while True:
                    # Bounded by what is left of the wait, so one quiet socket cannot outlast it.
                    left = max(0.0, started + timeout - time.monotonic())
                    message = json.loads(await asyncio.wait_for(socket.recv(), left))
                    if message.get("type") == "graph" and message["graph"].get("edges"):
                        return True
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException):
            return False

    await eventually(a_graph_arrives, timeout, interval=0.2, what="the graph socket to deliver a graph")
    return time.monotonic() - started


class Observer:
    """A control-channel client, as a sidecar is, that records every endpoints set it is sent.

    It reconnects the moment meshui is back (sooner than any real sidecar, whose backoff
    waits), so it is the one a partial endpoint set would reach first.
    """

    def __init__(self, mesh: Mesh) -> None:
        self.url = f"ws://{mesh.config.host}:{mesh.config.meshui_port}/api/v1/control"
        self.token = mesh.join_token("observer")
        self.sets: list[set[str]] = []
        self.connections = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        hello = {"type": "hello", "proxy_id": "observer-v1-0", "service": "observer", "version": "v1",
                 "address": "127.0.0.1:9", "admin": "127.0.0.1:9", "pid": os.getpid(),
                 "sidecar_version": "test"}
        while not self.stop.is_set():
            try:
                async with websockets.connect(
                    self.url, additional_headers={"Authorization": f"Bearer {self.token}"}, open_timeout=2
                ) as socket:
                    self.connections += 1
                    await socket.send(json.dumps(hello))
                    beat = asyncio.create_task(self._heartbeat(socket))
                    try:
                        async for raw in socket:
                            frame = json.loads(raw)
                            if frame["type"] == "endpoints":
                                services = frame["services"].values()
                                self.sets.append({e["instance"] for v in services for e in v})
                                await socket.send(json.dumps(
                                    {"type": "ack", "kind": "endpoints", "version": frame["version"]}))
                    finally:
                        beat.cancel()
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException):
                await asyncio.sleep(0.05)

    @staticmethod
    async def _heartbeat(socket: Any) -> None:
        while True:
            await asyncio.sleep(1)
            await socket.send(json.dumps({"type": "heartbeat", "state": {}}))


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["crash", "clean-stop"])
async def test_meshui_killed_under_load_every_request_succeeds_and_no_partial_set_is_sent(
    mesh: Mesh, signum: int
) -> None:
    observer = Observer(mesh)
    task = asyncio.create_task(observer.run())
    await eventually(lambda: any(PROXY_IDS <= s for s in observer.sets), timeout=15)
    # Blocking HTTP polls run in a thread, so the observer keeps reading meanwhile.
    await eventually(lambda: asyncio.to_thread(all_synced, mesh), timeout=15)
    with Load(mesh) as load:
        await eventually(lambda: len(load.outcomes) >= 20, timeout=20)
        sent_before = len(observer.sets)
        stopped = datetime.now(UTC)
        await asyncio.to_thread(mesh.kill, "meshui", signum)
        await asyncio.to_thread(mesh.start_again, "meshui")
        await eventually(lambda: asyncio.to_thread(all_synced, mesh, stopped), timeout=30)
        await eventually(lambda: len(observer.sets) > sent_before, timeout=15,
                         what="the observer to be sent endpoints after the restart")
        after_restart = observer.sets[sent_before:]
        await eventually(lambda: len(load.outcomes) >= 40, timeout=20)
    observer.stop.set()
    task.cancel()
    assert load.failures() == [], load.failures()
    partial = [sorted(PROXY_IDS - s) for s in after_restart if not PROXY_IDS <= s]
    assert partial == [], f"endpoint sets missing live instances were sent: {partial}"
