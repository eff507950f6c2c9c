"""A real meshui restart (uvicorn, same database and Redis) under real sidecar control clients.

Issue 6: after a restart, early sidecars were sent sets holding only the instances
reconnected so far. Here three sidecars' ``ControlClient``s run against a uvicorn; it is
stopped (SIGTERM: websockets closed with 1012) and started again while one sidecar stays
away. No sidecar may ever apply a set that shrinks its view, and the two that came back are
SYNCED once the hold ends (one heartbeat interval after the start).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from proxies.control.client import ControlClient
from proxies.mesh.endpoints import EndpointRegistry, EndpointSnapshot
from tests.polling import eventually
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 2


class Meshui:
    """uvicorn serving meshui on a free port, against one SQLite file and one Redis db."""

    def __init__(self, tmp: Path, redis_url: str) -> None:
        self.port = free_port()
        self.env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp / 'meshui.sqlite3'}",
                    "REDIS_URL": redis_url, "MESHUI_CA_DIR": str(tmp / "ca"),
                    "MESHUI_HEARTBEAT_INTERVAL": str(INTERVAL), "MESHUI_PUBLIC_READ": "true",
                    "MESHUI_LOG_LEVEL": "WARNING"}
        self.log = open(tmp / "meshui.log", "a")  # noqa: SIM115 (closed in stop)
        self.process: subprocess.Popen[bytes] | None = None
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env,
                       check=True, capture_output=True)
        # The catalog sidecars' join token, as a harness makes one (docs/security.md).
        self.token = subprocess.run(
            [sys.executable, "manage.py", "join_token", "--service", "catalog"], cwd=ROOT,
            env=self.env, check=True, capture_output=True, text=True).stdout.strip()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/control"

    def start(self) -> float:
        started = time.time()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "meshui.asgi:application", "--port",
             str(self.port), "--log-level", "warning",
             # channels-redis's receive can outlive a consumer on Valkey; the 1012 closes
             # go out when the shutdown starts, so do not wait long for stragglers.
             "--timeout-graceful-shutdown", "1"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return started

    async def stop(self) -> None:
        """SIGTERM, and wait without blocking the loop: the sidecars on it must answer the
        server's closing handshake."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.process.wait, 15)
        self.process = None

    async def sync_states(self) -> dict[str, str]:
        async with httpx.AsyncClient(timeout=5) as client:
            body = (await client.get(f"http://127.0.0.1:{self.port}/api/v1/instances")).json()
        return {i["proxy_id"]: i["sync"] for i in body["instances"] if i["connected"]}


@pytest.fixture
async def meshui(tmp_path: Path, redis_url: str) -> AsyncIterator[Meshui]:
    server = Meshui(tmp_path, redis_url)
    yield server
    await server.stop()
    server.log.close()


def names(snapshot: EndpointSnapshot) -> frozenset[str]:
    return frozenset(e.instance for entry in snapshot.services.values() for e in entry.endpoints)


def sidecar(meshui: Meshui, proxy_id: str, port: int, seen: list[frozenset[str]]
            ) -> ControlClient:
    registry = EndpointRegistry()
    registry.on_swap(lambda old, new: seen.append(names(new)))
    client = ControlClient(
        meshui.url, meshui.token, {"proxy_id": proxy_id, "service": "catalog", "version": "v1",
                                   "address": f"127.0.0.1:{port}"},
        registry, dict, backoff_min=0.05, backoff_max=0.2)
    client.start()
    return client


async def test_a_restart_never_sends_a_sidecar_a_set_that_shrinks_its_view(meshui: Meshui) -> None:
    meshui.start()
    seen: dict[str, list[frozenset[str]]] = {"a": [], "b": [], "c": []}
    clients = {p: sidecar(meshui, p, 9001 + i, seen[p]) for i, p in enumerate(seen)}
    everyone = frozenset(seen)
    try:
        await eventually(lambda: all(s and s[-1] == everyone for s in seen.values()), 20)
        for history in seen.values():
            history.clear()

        await meshui.stop()  # SIGTERM: uvicorn closes every control socket with 1012
        await clients["c"].stop()  # c is away, and stays away
        # What the old process sent while it stopped (a heartbeat it took as a revival,
        # say, on a loaded machine) is kept apart, so only the new process's pushes time
        # the hold below.
        while_stopping = {proxy_id: list(history) for proxy_id, history in seen.items()}
        for history in seen.values():
            history.clear()
        started = meshui.start()
        await eventually(lambda: seen["a"] and seen["b"], 20)
        pushed = time.time()

        for proxy_id in ("a", "b"):
            # Nothing the sidecar applied since the restart dropped an instance it had.
            assert all(view == everyone for view in seen[proxy_id]), seen[proxy_id]
            assert all(view == everyone for view in while_stopping[proxy_id]), while_stopping
        # c never said hello again: the hold ended after one heartbeat interval.
        assert pushed >= started + INTERVAL
        async def both_synced() -> bool:
            states = await meshui.sync_states()
            return states.get("a") == states.get("b") == "SYNCED"

        await eventually(both_synced, 10)
    finally:
        for client in clients.values():
            await client.stop()
