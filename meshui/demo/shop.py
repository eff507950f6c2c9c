"""One instance of a demo shop service: a small ASGI app that calls its downstreams.

Run as ``python -m meshui.demo.shop --service catalog --version v1 --port 9001
--proxy http://127.0.0.1:15012``. Downstream calls go out through the instance's own
sidecar the standard way (an HTTP proxy, absolute-form requests), so the app knows
nothing of where other services live. The app forwards the W3C trace headers it received,
as any instrumented app does, so traces join up across sidecars.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
from dataclasses import dataclass, replace
from typing import Any

import httpx
import orjson
import uvicorn

from meshui.demo.topology import route_for

TRACE_HEADERS = (b"traceparent", b"tracestate")


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How an instance misbehaves: the demo's knobs for failures and slowness."""

    base_delay_s: float = 0.002
    failure_rate: float = 0.0
    slow_rate: float = 0.0
    slow_delay_s: float = 0.4

    @classmethod
    def for_instance(cls, service: str, version: str) -> Behaviour:
        if service == "payments":
            return cls(
                base_delay_s=0.008,
                failure_rate=float(os.environ.get("DEMO_PAYMENTS_FAILURE_RATE", "0.1")),
                slow_rate=float(os.environ.get("DEMO_PAYMENTS_SLOW_RATE", "0.05")),
            )
        if (service, version) == ("catalog", "v2"):
            return cls(base_delay_s=0.012)  # the new catalog is slower: visible on the graph
        return cls()


class ShopApp:
    """ASGI app answering the routes of ``topology.ROUTES`` for one service instance."""

    def __init__(self, service: str, version: str, proxy: str | None,
                 behaviour: Behaviour | None = None, rng: random.Random | None = None) -> None:
        self.service = service
        self.version = version
        self.behaviour = behaviour or Behaviour.for_instance(service, version)
        self.rng = rng or random.Random()
        self.client = httpx.AsyncClient(
            proxy=proxy, timeout=5.0, trust_env=False,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        await self._drain(receive)
        status, body = await self.handle(scope["method"], scope["path"], scope["headers"])
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"x-shop-instance", f"{self.service}-{self.version}".encode())]})
        await send({"type": "http.response.body", "body": orjson.dumps(body)})

    async def handle(self, method: str, path: str,
                     headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, Any]]:
        calls = route_for(self.service, self.version, method, path)
        if calls is None:
            return 404, {"error": f"{self.service} has no route {method} {path}"}
        behaviour = self.behaviour
        delay = behaviour.base_delay_s * (0.5 + self.rng.random())
        if behaviour.slow_rate and self.rng.random() < behaviour.slow_rate:
            delay += behaviour.slow_delay_s
        await asyncio.sleep(delay)
        if behaviour.failure_rate and self.rng.random() < behaviour.failure_rate:
            return 503, {"error": f"{self.service} {self.version} declined the request"}
        forwarded = [(k, v) for k, v in headers if k in TRACE_HEADERS]
        results = await asyncio.gather(*(self._call(s, m, p, forwarded) for s, m, p in calls))
        failed = [r for r in results if r["status"] >= 500]
        body = {"service": self.service, "version": self.version, "calls": results}
        return (502 if failed else 200), body

    async def _call(self, service: str, method: str, path: str,
                    headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        try:
            response = await self.client.request(method, f"http://{service}{path}", headers=headers)
        except httpx.HTTPError as exc:
            return {"service": service, "status": 599, "error": type(exc).__name__}
        return {"service": service, "status": response.status_code,
                "instance": response.headers.get("x-shop-instance", "")}

    @staticmethod
    async def _drain(receive: Any) -> None:
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run one demo shop service instance.")
    parser.add_argument("--service", required=True)
    parser.add_argument("--version", default="v1")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--proxy", help="the sidecar's outbound listener, e.g. http://127.0.0.1:15002")
    parser.add_argument("--failure-rate", type=float, default=None,
                        help="share of requests answered 503 (overrides the service's default)")
    args = parser.parse_args(argv)
    behaviour = Behaviour.for_instance(args.service, args.version)
    if args.failure_rate is not None:
        behaviour = replace(behaviour, failure_rate=args.failure_rate)
    app = ShopApp(args.service, args.version, args.proxy, behaviour)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
