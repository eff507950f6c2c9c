"""Steady load on the demo shop's frontend, open loop, like a crowd of shoppers.

Requests start on a fixed schedule whatever the responses do (so a slow backend shows as
latency, not as less load), up to a cap on requests in flight. Run as
``python -m meshui.demo.loadgen --target http://127.0.0.1:15001 --rps 20``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter

import httpx

from meshui.demo.topology import LOAD_MIX


class LoadGenerator:
    def __init__(self, target: str, rps: float, host: str = "frontend", max_in_flight: int = 200,
                 rng: random.Random | None = None) -> None:
        if rps <= 0:
            raise ValueError(f"--rps must be positive, got {rps}")
        self.target = target.rstrip("/")
        self.rps = rps
        self.host = host
        self.max_in_flight = max_in_flight
        self.rng = rng or random.Random()
        self.statuses: Counter[int] = Counter()
        self.skipped = 0  # requests not sent because too many were in flight
        self._in_flight = 0
        self._paths = [(m, p) for m, p, weight in LOAD_MIX for _ in range(weight)]

    async def run(self, duration_s: float | None = None, report_every_s: float = 30.0) -> None:
        interval = 1.0 / self.rps
        async with httpx.AsyncClient(timeout=10.0, trust_env=False,
                                     limits=httpx.Limits(max_connections=self.max_in_flight)) as client:
            print(f"loadgen: started, {self.rps:g} requests/s to {self.target}",
                  file=sys.stderr, flush=True)
            started = next_send = next_report = time.monotonic()
            tasks: set[asyncio.Task[None]] = set()
            while duration_s is None or time.monotonic() - started < duration_s:
                now = time.monotonic()
                if now >= next_report + report_every_s:
                    next_report = now
                    self._report()
                if self._in_flight >= self.max_in_flight:
                    self.skipped += 1
                else:
                    task = asyncio.create_task(self._one(client))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                next_send += interval
                await asyncio.sleep(max(0.0, next_send - time.monotonic()))
            if tasks:
                await asyncio.wait(tasks, timeout=10)

    async def _one(self, client: httpx.AsyncClient) -> None:
        method, path = self.rng.choice(self._paths)
        self._in_flight += 1
        try:
            response = await client.request(method, self.target + path, headers={"host": self.host})
            self.statuses[response.status_code] += 1
        except httpx.HTTPError:
            self.statuses[0] += 1
        finally:
            self._in_flight -= 1

    def _report(self) -> None:
        total = sum(self.statuses.values())
        errors = sum(n for status, n in self.statuses.items() if status == 0 or status >= 500)
        print(f"loadgen: {total} requests sent at {self.rps:g}/s, {errors} errors, "
              f"{self.skipped} skipped (in-flight cap)", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Send steady load to the demo shop.")
    parser.add_argument("--target", required=True, help="the frontend sidecar's inbound URL")
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(LoadGenerator(args.target, args.rps).run(args.duration))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
