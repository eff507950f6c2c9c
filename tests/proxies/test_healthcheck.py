"""Active health checks: probe ejected instances over HTTP/1.1 and return them early."""

from __future__ import annotations

import asyncio

from proxies.dataplane.healthcheck import HealthChecker, http_probe
from proxies.mesh.endpoints import Endpoint
from proxies.policy.schema import HealthCheck, OutlierDetection
from proxies.traffic.outlier import OutlierDetector
from tests.clock import FakeClock
from tests.ports import free_port
from tests.proxies.conftest import LoopbackServers, until


def answering(status: bytes, seen: list[bytes] | None = None, body: bytes = b"ok"):  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if seen is not None:
                seen.append(head)
            framing = b"content-length: %d\r\n" % len(body) if body else b""
            writer.write(b"HTTP/1.1 " + status + b"\r\n" + framing + b"\r\n" + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return handler


def ejected(ports: list[int]) -> tuple[OutlierDetector, list[Endpoint]]:
    """A detector over instances on ``ports``, the first of them ejected for 30 s."""
    endpoints = [Endpoint("payments", f"p{i}", "v1", "127.0.0.1", port) for i, port in enumerate(ports)]
    od = OutlierDetector(OutlierDetection(max_ejection_percent=100.0), FakeClock(), endpoints)
    for _ in range(5):
        od.on_result(endpoints[0], 503, False)
    assert endpoints[0].ejected_until
    return od, endpoints


async def test_a_passing_active_health_check_returns_an_ejected_host_early(servers: LoopbackServers) -> None:
    seen: list[bytes] = []
    port = await servers.start(answering(b"200 OK", seen))
    od, (a, b) = ejected([port, free_port()])
    checker = HealthChecker(od, HealthCheck(path="/healthz"))
    assert await checker.check_once() == [a]
    assert not a.ejected_until
    assert od.eligible([a, b]) == ([a, b], False)
    assert seen[0].startswith(b"GET /healthz HTTP/1.1\r\n")
    assert b"host: payments\r\n" in seen[0]


async def test_a_failing_health_check_leaves_the_host_ejected(servers: LoopbackServers) -> None:
    port = await servers.start(answering(b"503 Service Unavailable"))
    od, (a, _) = ejected([port, free_port()])
    checker = HealthChecker(od, HealthCheck())
    assert await checker.check_once() == []
    assert a.ejected_until
    assert (checker.probes_total, checker.probe_failures_total) == (1, 1)


async def test_a_refused_connection_fails_the_probe() -> None:
    (a,) = ejected([free_port()])[1][:1]
    assert await http_probe(a, "/", 1.0) is False


async def test_a_probe_that_gets_no_answer_in_time_fails(servers: LoopbackServers) -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    port = await servers.start(silent)
    a = Endpoint("payments", "p0", "v1", "127.0.0.1", port)
    assert await http_probe(a, "/", 0.05) is False
    release.set()


async def test_only_ejected_hosts_are_probed() -> None:
    od, (a, b) = ejected([1, 2])
    probed: list[Endpoint] = []

    async def probe(endpoint: Endpoint, path: str, timeout_s: float) -> bool:
        probed.append(endpoint)
        return False

    await HealthChecker(od, HealthCheck(), probe).check_once()
    assert probed == [a]


async def test_a_host_returns_after_healthy_threshold_passes_in_a_row() -> None:
    od, (a, _) = ejected([1, 2])
    answers = [True, False, True, True]

    async def probe(endpoint: Endpoint, path: str, timeout_s: float) -> bool:
        return answers.pop(0)

    checker = HealthChecker(od, HealthCheck(healthy_threshold=2), probe)
    assert await checker.check_once() == []  # 1 pass
    assert await checker.check_once() == []  # a failure starts the count again
    assert await checker.check_once() == []  # 1 pass
    assert await checker.check_once() == [a]


async def test_the_checker_runs_on_its_interval_until_cancelled(servers: LoopbackServers) -> None:
    port = await servers.start(answering(b"204 No Content", body=b""))
    od, (a, _) = ejected([port, free_port()])
    checker = HealthChecker(od, HealthCheck(interval_s=0.01))
    checker.start()
    task = checker.task
    assert task is not None and not task.done()
    await until(lambda: not a.ejected_until)
    checker.cancel()
    assert checker.task is None
    await until(task.done)
    assert task.cancelled()


async def test_a_malformed_response_fails_the_probe(servers: LoopbackServers) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        writer.close()

    port = await servers.start(garbage)
    assert await http_probe(Endpoint("payments", "p0", "v1", "127.0.0.1", port), "/", 1.0) is False
