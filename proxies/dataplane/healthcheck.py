"""Active health checks: probe ejected instances and return them early when they answer.

One ``HealthChecker`` per destination whose ``outlier_detection.health_check`` is set
(docs/policy.md). Every ``interval_s`` it sends ``GET <path>`` over HTTP/1.1 to each
instance the ``OutlierDetector`` has ejected; after ``healthy_threshold`` passing probes
in a row (a 2xx within ``timeout_ms``) it calls ``OutlierDetector.on_health`` so the
instance is back before its ejection time is up (Envoy's
``successful_active_health_check_uneject_host``). Instances in service are not probed:
real traffic and the outlier detector already watch them.

The data plane starts one with ``start()`` and ends it with ``cancel()``; tests call
``check_once()`` to run a round without timers. The probe is a function, so tests (and a
future TLS probe) can swap it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from proxies import http1
from proxies.mesh.endpoints import Endpoint
from proxies.policy.schema import HealthCheck
from proxies.traffic.outlier import OutlierDetector

log = logging.getLogger(__name__)

Probe = Callable[[Endpoint, str, float], Awaitable[bool]]
USER_AGENT = b"meshui-healthcheck/1"


class _Status:
    """Codec callbacks: note when the response head is complete."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    def on_headers_complete(self) -> None:
        self.done = True


async def http_probe(endpoint: Endpoint, path: str, timeout_s: float) -> bool:
    """``GET path`` on the instance; True when it answers 2xx within ``timeout_s``.

    Only the status line matters, so the connection is closed once the head is parsed.
    """
    request = b"GET %b HTTP/1.1\r\nhost: %b\r\nuser-agent: %b\r\nconnection: close\r\n\r\n" % (
        path.encode("latin-1"),
        endpoint.service.encode("ascii"),
        USER_AGENT,
    )
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
            writer.write(request)
            status = _Status()
            parser = http1.ResponseParser(status)
            while not status.done:
                data = await reader.read(4096)
                if not data:
                    return False
                try:
                    parser.feed_data(data)
                except http1.ParseError:
                    # Bytes after the head (a body on a 204, say) are not the probe's concern.
                    if not status.done:
                        return False
            return 200 <= parser.get_status_code() < 300
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()


class HealthChecker:
    """Probes the ejected instances of one destination on an interval."""

    __slots__ = ("detector", "config", "probe", "passes", "task", "probes_total", "probe_failures_total")

    def __init__(self, detector: OutlierDetector, config: HealthCheck, probe: Probe = http_probe) -> None:
        self.detector = detector
        self.config = config
        self.probe = probe
        self.passes: dict[Endpoint, int] = {}  # passing probes in a row, ejected instances only
        self.task: asyncio.Task[None] | None = None
        self.probes_total = 0
        self.probe_failures_total = 0

    async def check_once(self) -> list[Endpoint]:
        """Probe every ejected instance once; return those this round put back in service."""
        ejected = [e for e in self.detector.hosts if e.ejected_until]
        # Forget instances no longer ejected (returned by the sweep or gone from the set).
        self.passes = {e: n for e, n in self.passes.items() if e in ejected}
        if not ejected:
            return []
        config = self.config
        timeout_s = config.timeout_ms / 1000.0
        results = await asyncio.gather(*(self.probe(e, config.path, timeout_s) for e in ejected))
        returned = []
        for endpoint, healthy in zip(ejected, results, strict=True):
            self.probes_total += 1
            if not healthy:
                self.probe_failures_total += 1
                self.passes.pop(endpoint, None)
                self.detector.on_health(endpoint, False)
                continue
            passes = self.passes.get(endpoint, 0) + 1
            if passes < config.healthy_threshold:
                self.passes[endpoint] = passes
                continue
            self.passes.pop(endpoint, None)
            if endpoint.ejected_until:  # the sweep may have returned it while we probed
                self.detector.on_health(endpoint, True)
                returned.append(endpoint)
        return returned

    async def run(self) -> None:
        """Probe every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.config.interval_s)
            try:
                await self.check_once()
            except Exception:  # loop boundary: a bug in one round must not end the checks
                log.exception("health check round failed")

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run(), name="healthcheck")

    def cancel(self) -> None:
        """Stop probing (the data plane calls this when the policy drops the check, or at close)."""
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
