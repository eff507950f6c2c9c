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
from collector.forwarder import ForwarderConfig
from collector.keeprelay import KeepRelayConfig
from collector.publisher import LivePublisherConfig
from collector.receiver import ReceiverConfig
from collector.receiver_grpc import GrpcReceiverConfig
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


GRPC_OFF = "off"


def _grpc_port(raw: str) -> int | None:
    """A gRPC port flag's value: a port 0..65535 (0 picks a free one), or ``off`` for none."""
    if raw.strip().lower() == GRPC_OFF:
        return None
    try:
        return int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number or {GRPC_OFF!r}, got {raw!r}") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None


def _header(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` (the first ``=`` splits) as a header; ``Authorization=Bearer x``."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def _env_headers(name: str) -> list[tuple[str, str]]:
    """``k1=v1,k2=v2`` with percent-encoded values, as ``OTEL_EXPORTER_OTLP_HEADERS`` is written."""
    from urllib.parse import unquote

    headers = []
    for item in os.environ.get(name, "").split(","):
        if not item.strip():
            continue
        try:
            key, value = _header(item)
        except argparse.ArgumentTypeError as exc:
            raise SystemExit(f"{name}: {exc}") from None
        headers.append((key, unquote(value)))
    return headers


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
        "--grpc-port",
        type=_grpc_port,
        default=os.environ.get("COLLECTOR_GRPC_PORT") or "4317",
        help=f"OTLP/gRPC port, {GRPC_OFF!r} for none (env COLLECTOR_GRPC_PORT, default 4317)",
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
        help="largest accepted request body or gRPC message, also after gzip"
        " (env COLLECTOR_MAX_BODY_BYTES, default 8 MiB)",
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
        "--forward-endpoint",
        default=os.environ.get("COLLECTOR_FORWARD_ENDPOINT", ""),
        help="also send every accepted export to this OTLP/HTTP base URL, e.g. http://tempo:4318 "
        "(env COLLECTOR_FORWARD_ENDPOINT; default off)",
    )
    parser.add_argument(
        "--forward-header",
        action="append",
        type=_header,
        default=None,
        metavar="NAME=VALUE",
        help="header sent with every forwarded request, repeatable, e.g. 'Authorization=Bearer x' "
        "(env COLLECTOR_FORWARD_HEADERS: k1=v1,k2=v2 with percent-encoded values)",
    )
    parser.add_argument(
        "--forward-signals",
        default=os.environ.get("COLLECTOR_FORWARD_SIGNALS", "traces,metrics"),
        help="signals to forward: traces, metrics or both (env COLLECTOR_FORWARD_SIGNALS; "
        "Tempo and Jaeger take traces only)",
    )
    parser.add_argument(
        "--forward-queue-bytes",
        type=int,
        default=_env_int("COLLECTOR_FORWARD_QUEUE_BYTES", 64 * 1024 * 1024),
        help="payload bytes the forward queue holds, past it new exports are dropped "
        "(env COLLECTOR_FORWARD_QUEUE_BYTES, default 64 MiB)",
    )
    parser.add_argument(
        "--forward-queue-exports",
        type=int,
        default=_env_int("COLLECTOR_FORWARD_QUEUE_EXPORTS", 10_000),
        help="exports the forward queue holds (env COLLECTOR_FORWARD_QUEUE_EXPORTS, default 10000)",
    )
    parser.add_argument(
        "--forward-timeout",
        type=float,
        default=_env_float("COLLECTOR_FORWARD_TIMEOUT", 10.0),
        help="seconds for one forward request (env COLLECTOR_FORWARD_TIMEOUT, default 10)",
    )
    parser.add_argument(
        "--forward-max-retry-time",
        type=float,
        default=_env_float("COLLECTOR_FORWARD_MAX_RETRY_TIME", 300.0),
        help="seconds a batch is retried before it is dropped (env COLLECTOR_FORWARD_MAX_RETRY_TIME, "
        "default 300)",
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
    parser.add_argument(
        "--no-keep-relay",
        action="store_true",
        default=os.environ.get("COLLECTOR_KEEP_RELAY", "on").lower() in ("off", "false", "0"),
        help="do not ask the sidecars, through meshui, for the spans of traces marked meshui.keep "
        "(env COLLECTOR_KEEP_RELAY=off)",
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
        grpc_receiver=GrpcReceiverConfig(
            enabled=args.grpc_port is not None,
            host=args.host,
            port=args.grpc_port or 0,
            max_message_bytes=args.max_body_bytes,
        ),
        publisher=LivePublisherConfig(group=args.graph_group),
        cardinality=CardinalityConfig(
            max_services=args.max_services, max_edges=args.max_edges, max_series=args.max_series
        ),
        forwarder=ForwarderConfig(
            endpoint=args.forward_endpoint,
            headers=tuple(
                args.forward_header if args.forward_header is not None
                else _env_headers("COLLECTOR_FORWARD_HEADERS")
            ),
            signals=tuple(s.strip() for s in args.forward_signals.split(",") if s.strip()),
            queue_max_bytes=args.forward_queue_bytes,
            queue_max_exports=args.forward_queue_exports,
            timeout_s=args.forward_timeout,
            max_retry_time_s=args.forward_max_retry_time,
        ),
        trace_store=TraceStoreConfig(
            enabled=not args.no_trace_store, ttl_s=args.trace_ttl, max_bytes=args.trace_max_bytes
        ),
        keep_relay=KeepRelayConfig(enabled=not args.no_keep_relay),
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
