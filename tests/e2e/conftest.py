"""The real demo mesh, started the way `make demo` starts it, shared by the end-to-end tests.

``python -m meshui.demo`` runs as a child on free loopback ports with the load generator
off (the tests send their own, counted traffic). Teardown sends SIGINT, as Ctrl-C would,
and fails the run if any process of the mesh outlives it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from meshui.demo.mesh import MeshConfig
from meshui.demo.topology import INSTANCES
from tests import polling
from tests.e2e.databases import own_database
from tests.ports import free_port, free_port_block

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 120.0
T = TypeVar("T")


def processes_with_env(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker`` (our unique token)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                status = (entry / "status").read_text()
                if "\nState:\tZ" not in status:
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


@dataclass
class RunningMesh:
    process: subprocess.Popen[str]
    config: MeshConfig
    token: str  # the run's marker, in every child's environment
    env: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)

    def join_token(self, service: str) -> str:
        """A join token for ``service``: the demo's own for its services, else a new one."""
        made = self.config.data_dir / "join-tokens" / f"{service}.token"
        if made.exists():
            return made.read_text().strip()
        done = subprocess.run(
            [sys.executable, "manage.py", "join_token", "--service", service, "--description", "e2e"],
            cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.strip()

    @property
    def api(self) -> str:
        return self.config.dashboard_url.rstrip("/")

    def graph(self, window: int = 3600) -> dict:
        response = httpx.get(f"{self.api}/api/v1/graph", params={"window": window}, timeout=5)
        response.raise_for_status()
        return response.json()

    def edge_count(self, source: str, target: str, window: int = 3600) -> int:
        for edge in self.graph(window)["edges"]:
            if (edge["source"], edge["target"]) == (source, target):
                return int(edge["requests"])
        return 0

    def wait_for(self, predicate: Callable[[], T], timeout: float = 15.0, what: str = "the condition") -> T:
        """``tests.polling.wait_until`` at the pace of a whole mesh (an API call every 0.1 s)."""
        return polling.wait_until(predicate, timeout, interval=0.1, what=what)

    def settled(self, read: Callable[[], T], quiet: float = 3.0, timeout: float = 30.0) -> T:
        """``read()`` once it returned the same value for ``quiet`` seconds, and that value.

        Read a baseline count only through this: sidecars export every second and the
        collector flushes in batches, so the previous test's telemetry may still be landing
        (a baseline read too early once made an exact count off by one in CI). ``quiet``
        spans more than two export intervals.
        """
        return polling.settled(read, quiet, timeout, interval=0.25, what="counts")

    def frontend(self) -> str:
        return self.config.inbound_url("frontend")


@pytest.fixture(scope="session")
def demo_mesh(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMesh]:
    workdir = tmp_path_factory.mktemp("mesh")
    with own_database(workdir, "demo") as database_url:
        yield from run_demo(workdir, redis_server_url, database_url)


def run_demo(workdir: Path, redis_server_url: str, database_url: str) -> Iterator[RunningMesh]:
    """``python -m meshui.demo`` as a child, until the generator is closed."""
    # In every child's environment: what finds the processes a run left behind.
    token = f"e2e-{secrets.token_hex(8)}"
    redis_url = f"{redis_server_url}/11"
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **os.environ,
        "MESHUI_PORT": str(free_port()),
        "COLLECTOR_HTTP_PORT": str(free_port()),
        "COLLECTOR_GRPC_PORT": str(free_port()),
        "DEMO_BASE_PORT": str(free_port_block(10 * len(INSTANCES))),
        "DEMO_RPS": "0",
        "DEMO_TRACE_SAMPLE": "0",
        "DEMO_LOG_DIR": str(workdir / "log"),
        "DEMO_PAYMENTS_FAILURE_RATE": "0",
        "DEMO_PAYMENTS_SLOW_RATE": "0",
        # No traffic policy: versions balance together, so a dead instance has a live peer
        # (the demo's canary split pins versions; tests/e2e/test_resilience.py covers policy).
        "DEMO_POLICY": "",
        "REDIS_URL": redis_url,
        "MESHUI_E2E_RUN": token,
        "DEMO_DATA_DIR": str(workdir),  # the CA, the join tokens
        "PYTHONUNBUFFERED": "1",
    }
    env["DATABASE_URL"] = database_url
    process = subprocess.Popen(
        [sys.executable, "-m", "meshui.demo"], cwd=PROJECT_ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    saved = dict(os.environ)
    ports = ("MESHUI_PORT", "COLLECTOR_HTTP_PORT", "COLLECTOR_GRPC_PORT", "DEMO_BASE_PORT",
             "DEMO_DATA_DIR")
    os.environ.update({k: env[k] for k in ports})
    try:
        config = MeshConfig.from_env()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    mesh = RunningMesh(process, config, token, env)
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            mesh.output.append(line.rstrip("\n"))
            if "Press Ctrl-C to stop." in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        if not ready.wait(STARTUP_TIMEOUT) or process.poll() is not None:
            process.kill()
            pytest.fail("the demo mesh did not start:\n" + "\n".join(mesh.output[-60:]))
        yield mesh
    finally:
        stop_mesh(mesh)


def stop_mesh(mesh: RunningMesh, grace: float = 15.0) -> float:
    """Ctrl-C the runner; assert it and every child are gone. Returns seconds taken."""
    if mesh.process.poll() is not None:
        return 0.0
    started = time.monotonic()
    mesh.process.send_signal(signal.SIGINT)
    try:
        code = mesh.process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        mesh.process.kill()
        raise AssertionError("the demo runner did not stop within "
                             f"{grace} s of Ctrl-C:\n" + "\n".join(mesh.output[-30:])) from None
    elapsed = time.monotonic() - started
    leftovers = processes_with_env(mesh.token)
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    assert code == 0, "\n".join(mesh.output[-30:])
    assert not leftovers, f"processes left behind after Ctrl-C: {leftovers}"
    return elapsed
