"""Start a set of child processes, wait until each is ready, and stop them all cleanly.

Used by the demo runner and by the end-to-end tests, so both start the mesh the same way.
Each child runs in its own session (its own process group) so a terminal's Ctrl-C reaches
only the supervisor, which then stops children newest first: SIGTERM to the group, then
SIGKILL to whatever is left when the grace period ends. Nothing is left behind.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Probe = Callable[[], bool]


class StartupError(RuntimeError):
    """A child exited or never became ready; the message says which and shows its log."""


def tcp_probe(host: str, port: int) -> Probe:
    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    return probe


def _tls_context(cafile: str | None) -> ssl.SSLContext | None:
    """The context an https:// probe verifies with (the demo's own CA when given)."""
    return ssl.create_default_context(cafile=cafile) if cafile else None


def http_probe(url: str, expect: int = 200, cafile: str | None = None) -> Probe:
    context = _tls_context(cafile)

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1.0, context=context) as response:  # noqa: S310
                return response.status == expect
        except urllib.error.HTTPError as exc:
            return exc.code == expect
        except (OSError, ValueError):
            return False

    return probe


def policy_applied_probe(url: str, sidecars: int, cafile: str | None = None) -> Probe:
    """meshui's ``/api/v1/proxies``: no revision yet, or ``sidecars`` connected and all SYNCED."""
    context = _tls_context(cafile)

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1.0, context=context) as response:  # noqa: S310
                summary = json.load(response)["summary"]
        except (OSError, ValueError, KeyError):
            return False
        return summary["revision"] == 0 or summary["synced"] == summary["total"] >= sidecars

    return probe


def log_probe(path: Path, marker: str) -> Probe:
    def probe() -> bool:
        try:
            return marker in path.read_text(errors="replace")
        except OSError:
            return False

    return probe


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out and released: free now (nothing listens on it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ephemeral_ports() -> range:
    """The ports the kernel hands out to outgoing connections (and to a bind to port 0)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


def free_port_block(size: int, host: str = "127.0.0.1") -> int:
    """A base port with ``size`` consecutive free ports (for a whole demo mesh).

    The block lies below the ephemeral range: inside it, any client's outgoing connection
    could take one of the ports between this check and the sidecars' bind (seen in a CI
    run: a sidecar's admin port was in use by the time it started).
    """
    rng = random.Random()
    top = min(40000, ephemeral_ports().start) - size
    if top <= 10000:
        top = 40000 - size  # an unusual range: pick as before, the bind check still applies
    for _ in range(50):
        base = rng.randrange(10000, top, 100)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no block of {size} free ports on {host}")


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Supervisor:
    log_dir: Path
    base_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        merged = {**self.base_env, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=merged, cwd=cwd, start_new_session=True,
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def wait_ready(self, child: Child, probe: Probe, timeout: float = 30.0) -> float:
        """Poll ``probe`` until it passes; returns seconds waited. Raises StartupError."""
        started = time.monotonic()
        while True:
            if probe():
                return time.monotonic() - started
            code = child.process.poll()
            if code is not None:
                raise StartupError(f"{child.name} exited with code {code}:\n{child.log_tail()}")
            if time.monotonic() - started > timeout:
                raise StartupError(
                    f"{child.name} was not ready after {timeout:.0f} s:\n{child.log_tail()}")
            time.sleep(0.05)

    def run_to_completion(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                          timeout: float = 120.0) -> None:
        """Run a one-off command (a migration, say); raise StartupError if it fails."""
        child = self.start(name, argv, env)
        try:
            code = child.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal(child, signal.SIGKILL)
            raise StartupError(f"{name} did not finish in {timeout:.0f} s") from None
        finally:
            self.children.remove(child)
        if code != 0:
            raise StartupError(f"{name} failed with code {code}:\n{child.log_tail()}")

    def child(self, name: str) -> Child:
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(name)

    def kill(self, child: Child, signum: int = signal.SIGKILL) -> None:
        """Signal a child's process group (SIGKILL: a crash; SIGTERM: a clean stop), wait, forget it."""
        self._signal(child, signum)
        child.process.wait(timeout=15)
        self.children.remove(child)

    def exited(self) -> list[Child]:
        return [child for child in self.children if child.process.poll() is not None]

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM every child (newest first), SIGKILL whatever outlives ``grace``."""
        for child in reversed(self.children):
            self._signal(child, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for child in self.children:
            # The group too: a child's own children (uvicorn workers, celery) go with it.
            self._signal(child, signal.SIGKILL)
            if child.process.poll() is None:
                child.process.wait(timeout=2)
        self.children.clear()

    @staticmethod
    def _signal(child: Child, signum: int) -> None:
        try:
            os.killpg(child.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


PYTHON = sys.executable
