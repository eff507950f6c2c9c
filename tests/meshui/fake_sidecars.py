"""Sidecars without a data path: real WebSocket clients of a running meshui's control channel.

Each says hello as its service and version, ACKs every ``endpoints`` and ``config`` frame
(or NACKs configs, when told to), and sends heartbeats, from a thread with its own event
loop (Playwright's sync API owns the test's thread). Used where a browser test needs the
sync state of real sidecars without starting them (docs/control-channel.md).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect

HEARTBEAT_S = 1.0  # well inside the 3 intervals that keep an instance live


@dataclass
class FakeSidecar:
    proxy_id: str
    service: str
    version: str
    port: int
    nack_config: str | None = None  # a reason: NACK every config with it
    configs: list[int] = field(default_factory=list)  # the revisions it was sent
    # (service, instance) its heartbeats report ejected, each for a minute from now.
    ejecting: tuple[tuple[str, str], ...] = ()
    # What its balancer reports (state.upstreams): {service: {instance: (requests per
    # heartbeat, EWMA ms, requests in flight)}}; an instance in ``ejecting`` is reported out.
    calls: dict[str, dict[str, tuple[int, float, int]]] = field(default_factory=dict)
    beats: int = 0

    def heartbeat(self) -> dict[str, Any]:
        until = time.time() + 60
        self.beats += 1
        upstreams = [
            {"service": service, "overflow": {}, "endpoints": [
                {"instance": instance, "requests": requests, "requests_total": requests * self.beats,
                 "ewma_ms": ewma_ms, "outstanding": outstanding,
                 "ejected": (service, instance) in self.ejecting,
                 "until": until if (service, instance) in self.ejecting else None, "overflow": 0}
                for instance, (requests, ewma_ms, outstanding) in sorted(instances.items())]}
            for service, instances in sorted(self.calls.items())]
        return {"type": "heartbeat", "state": {
            "requests_total": 100 * self.beats, "uptime_s": float(self.beats),
            "upstreams": upstreams, "upstreams_truncated": 0,
            "ejected": [{"service": service, "instance": instance, "until": until}
                        for service, instance in self.ejecting]}}

    def hello(self) -> dict[str, Any]:
        return {"type": "hello", "proxy_id": self.proxy_id, "service": self.service,
                "version": self.version, "address": f"127.0.0.1:{self.port}",
                "admin": f"127.0.0.1:{self.port + 1000}", "pid": 4242,
                "sidecar_version": "0.1.0"}

    def answer(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        if frame.get("type") == "endpoints":
            return {"type": "ack", "kind": "endpoints", "version": frame["version"]}
        if frame.get("type") == "config":
            self.configs.append(frame["revision"])
            if self.nack_config:
                return {"type": "nack", "kind": "config", "version": frame["revision"],
                        "reason": self.nack_config}
            return {"type": "ack", "kind": "config", "version": frame["revision"]}
        return None


async def _run(url: str, token: str, sidecar: FakeSidecar, stop: asyncio.Event) -> None:
    # The trust_bundle frame after welcome, and any other it does not answer, is ignored.
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as socket:
        await socket.send(json.dumps(sidecar.hello()))

        async def beat() -> None:
            while not stop.is_set():
                await socket.send(json.dumps(sidecar.heartbeat()))
                try:
                    await asyncio.wait_for(stop.wait(), HEARTBEAT_S)
                except TimeoutError:
                    pass

        beating = asyncio.create_task(beat())
        try:
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(socket.recv(), 0.2)
                except TimeoutError:
                    continue
                reply = sidecar.answer(json.loads(text))
                if reply is not None:
                    await socket.send(json.dumps(reply))
        finally:
            beating.cancel()


@contextmanager
def fake_sidecars(base_url: str, tokens: Mapping[str, str], sidecars: list[FakeSidecar]
                  ) -> Iterator[None]:
    """``sidecars`` connected to the meshui at ``base_url`` while the block runs, each with
    its service's join token from ``tokens`` (tests/meshui/browser.py, ``join_tokens``)."""
    url = base_url.replace("http://", "ws://") + "/api/v1/control"
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failures: list[BaseException] = []

    async def main() -> None:
        results = await asyncio.gather(*(_run(url, tokens[s.service], s, stop)
                                         for s in sidecars),
                                       return_exceptions=True)
        failures.extend(r for r in results if isinstance(r, BaseException))

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
    assert not failures, failures
