"""``python -m collector``: run the OTLP collector (flags default from the environment)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from collector.cardinality import CardinalityConfig
from collector.errors import ConfigError
from collector.publisher import LivePublisherConfig
from collector.receiver import ReceiverConfig
from collector.service import Collector, CollectorConfig
from collector.traceconnector import TraceStoreConfig


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def parse_args(argv: Sequence[str] | None = None) -> CollectorConfig:
    parser = argparse.ArgumentParser(
        prog="python -m collector", description="meshui OTLP collector -> live service graph"
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("COLLECTOR_HOST", "127.0.0.1"),
        help="address to listen on (env COLLECTOR_HOST)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=_env_int("COLLECTOR_HTTP_PORT", 4318),
        help="OTLP/HTTP port (env COLLECTOR_HTTP_PORT, default 4318)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", ""),
        help="Redis for the graph and the channel layer (env REDIS_URL, required)",
    )
    parser.add_argument(
        "--graph-group",
        default=os.environ.get("MESHUI_GRAPH_GROUP", "graph"),
        help="channel-layer group for live graph updates (env MESHUI_GRAPH_GROUP)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=_env_int("COLLECTOR_MAX_BODY_BYTES", 8 * 1024 * 1024),
        help="largest accepted request body, also after gzip (env COLLECTOR_MAX_BODY_BYTES, default 8 MiB)",
    )
    parser.add_argument(
        "--max-header-bytes",
        type=int,
        default=_env_int("COLLECTOR_MAX_HEADER_BYTES", 64 * 1024),
        help="largest request head, more gets 431 (env COLLECTOR_MAX_HEADER_BYTES, default 64 KiB)",
    )
    parser.add_argument(
        "--max-services",
        type=int,
        default=_env_int("COLLECTOR_MAX_SERVICES", 1_000),
        help="distinct services written per window (env COLLECTOR_MAX_SERVICES, default 1000)",
    )
    parser.add_argument(
        "--max-edges",
        type=int,
        default=_env_int("COLLECTOR_MAX_EDGES", 5_000),
        help="distinct edges written per window (env COLLECTOR_MAX_EDGES, default 5000)",
    )
    parser.add_argument(
        "--max-series",
        type=int,
        default=_env_int("COLLECTOR_MAX_SERIES", 250_000),
        help="distinct graph fields written per window (env COLLECTOR_MAX_SERIES, default 250000)",
    )
    parser.add_argument(
        "--trace-ttl",
        type=int,
        default=_env_int("COLLECTOR_TRACE_TTL_S", 3600),
        help="seconds a stored trace stays searchable (env COLLECTOR_TRACE_TTL_S, default 3600)",
    )
    parser.add_argument(
        "--trace-max-bytes",
        type=int,
        default=_env_int("COLLECTOR_TRACE_MAX_BYTES", 256 * 1024 * 1024),
        help="Redis memory budget of the trace store, shared by all collectors "
        "(env COLLECTOR_TRACE_MAX_BYTES, default 256 MiB)",
    )
    parser.add_argument(
        "--no-trace-store",
        action="store_true",
        default=os.environ.get("COLLECTOR_TRACE_STORE", "on").lower() in ("off", "false", "0"),
        help="do not store traces (env COLLECTOR_TRACE_STORE=off)",
    )
    parser.add_argument("--log-level", default=os.environ.get("COLLECTOR_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    if not args.redis_url:
        parser.error("--redis-url or REDIS_URL is required")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = CollectorConfig(
        redis_url=args.redis_url,
        receiver=ReceiverConfig(
            host=args.host,
            port=args.http_port,
            max_body_bytes=args.max_body_bytes,
            max_header_bytes=args.max_header_bytes,
        ),
        publisher=LivePublisherConfig(group=args.graph_group),
        cardinality=CardinalityConfig(
            max_services=args.max_services, max_edges=args.max_edges, max_series=args.max_series
        ),
        trace_store=TraceStoreConfig(
            enabled=not args.no_trace_store, ttl_s=args.trace_ttl, max_bytes=args.trace_max_bytes
        ),
    )
    try:
        config.validate()
    except ConfigError as exc:
        parser.error(str(exc))
    return config


async def run(config: CollectorConfig) -> None:
    collector = Collector(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await collector.start()
    try:
        await stop.wait()
    finally:
        await collector.shutdown()


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional off Linux
        asyncio.run(run(config))
    else:
        uvloop.run(run(config))
    sys.exit(0)


if __name__ == "__main__":
    main()
