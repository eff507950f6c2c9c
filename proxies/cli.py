"""Command-line entry point: parse flags, set up logging and the event loop, run until signalled."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from proxies.config import SidecarConfig, parse_config

log = logging.getLogger("proxies")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


async def run(config: SidecarConfig) -> None:
    from proxies.sidecar import Sidecar, default_proxy_id
    from proxies.telemetry import Resource, SpanData, Telemetry, tracecontext

    proxy_id = config.proxy_id or default_proxy_id(config)
    telemetry = Telemetry(
        Resource(config.service, config.version, proxy_id), config.otlp, config.trace_sample
    )
    sidecar = Sidecar(config, telemetry, tracecontext.incoming, SpanData, proxy_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await sidecar.start()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await sidecar.stop()
        raise SystemExit(1) from exc
    await stop.wait()
    log.info("signal received, shutting down")
    await sidecar.stop()


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(argv)
    setup_logging(config.log_level)
    event_loop_runner()(run(config))


def event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """``uvloop.run`` when uvloop is installed (the faster loop), else ``asyncio.run``."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
