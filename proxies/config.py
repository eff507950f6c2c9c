"""Sidecar settings: command-line flags, each also readable from MESHUI_SIDECAR_<FLAG>."""

from __future__ import annotations

import argparse
import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from proxies.dataplane import limits as defaults
from proxies.dataplane.limits import ListenerLimits
from proxies.mesh.endpoints import EndpointsError, parse_address
from proxies.mesh.schema import (
    address_problem,
    proxy_id_problem,
    service_name_problem,
    version_problem,
)
from proxies.policy.parser import load_policy_file
from proxies.policy.schema import Policy, PolicyError
from proxies.telemetry.tailkeep import TailKeepConfig

ENV_PREFIX = "MESHUI_SIDECAR_"
tail_defaults = TailKeepConfig()


@dataclass(frozen=True)
class SidecarConfig:
    service: str
    version: str
    app: tuple[str, int]
    inbound: tuple[str, int]
    outbound: tuple[str, int]
    admin: tuple[str, int]
    control: str | None
    token: str | None
    endpoints_file: str | None
    otlp: str | None
    trace_sample: float
    proxy_id: str | None
    advertise: str | None
    log_level: str
    policy_file: str | None = None
    # The CA bundle meshui's certificate is verified against on a wss:// --control; None:
    # the system's trust store (docs/sidecar.md, "The control channel over TLS").
    control_ca: str | None = None
    # The traffic policy the sidecar starts with (docs/policy.md): the --policy file, already
    # validated, or every default. A control channel `config` revision replaces it.
    policy: Policy = field(default_factory=Policy)
    # What one client connection of a data listener may use (docs/sidecar.md, "Limits").
    limits: ListenerLimits = field(default_factory=ListenerLimits)
    # Tail keep of slow and failed requests' whole traces (docs/sidecar.md, "Tail keep").
    tail: TailKeepConfig = field(default_factory=TailKeepConfig)
    # A static identity (--cert, --key, --trust-bundle) instead of one from meshui's CA.
    identity_files: tuple[str, str, str] | None = None


def control_tls_problem(url: str, ca_file: str | None) -> str | None:
    """What is wrong with the control URL's scheme or the --control-ca file, if anything."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in ("ws", "wss"):
        return f"--control must be a ws:// or wss:// URL, got {url!r}"
    if not ca_file:
        return None
    if scheme != "wss":
        return "--control-ca verifies meshui's certificate: it needs a wss:// --control URL"
    try:
        ssl.create_default_context(cafile=ca_file)
    except FileNotFoundError:
        return f"--control-ca {ca_file}: no such file"
    except (ssl.SSLError, OSError) as exc:
        return f"--control-ca {ca_file}: not a PEM CA bundle ({exc})"
    return None


def _flags() -> list[tuple[str, dict]]:
    return [
        ("--service", {"help": "logical service this sidecar stands beside (required)"}),
        ("--version", {"help": "version label of this instance, e.g. v1 (required)"}),
        ("--app", {"help": "host:port of the local app (required)"}),
        ("--inbound", {"default": "127.0.0.1:15001", "help": "inbound listener host:port"}),
        ("--outbound", {"default": "127.0.0.1:15002", "help": "outbound listener host:port"}),
        ("--admin", {"default": "127.0.0.1:15000", "help": "admin listener (loopback)"}),
        ("--control", {"help": "control channel URL, ws:// or wss://host:port/api/v1/control"}),
        ("--token", {"help": "this service's join token: meshctl token create (also MESHUI_JOIN_TOKEN)"}),
        (
            "--control-ca",
            {"help": "PEM CA bundle to verify meshui's certificate on a wss:// --control "
             "(also MESHUI_CONTROL_CA; default: the system's trust store)"},
        ),
        ("--endpoints", {"help": "static endpoints JSON file, used when --control is absent"}),
        ("--otlp", {"help": "OTLP/HTTP collector base URL, e.g. http://127.0.0.1:4318"}),
        ("--trace-sample", {"default": "0.01", "help": "fraction of requests traced"}),
        ("--proxy-id", {"help": "proxy id (default: <service>-<version>-<random>)"}),
        ("--advertise", {"help": "host:port other sidecars dial (default: --inbound)"}),
        ("--log-level", {"default": "INFO", "help": "DEBUG, INFO, WARNING, ERROR"}),
        ("--policy", {"help": "traffic policy file, YAML or JSON (docs/policy.md)"}),
        ("--cert", {"help": "a static identity, not meshui's CA: PEM certificate chain (docs/security.md)"}),
        ("--key", {"help": "the static identity's PEM private key"}),
        ("--trust-bundle", {"help": "the static identity's PEM roots to trust peers by"}),
        (
            "--max-target-bytes",
            {"default": str(defaults.MAX_TARGET_BYTES), "help": "longest request-target (414 past it)"},
        ),
        (
            "--max-header-bytes",
            {
                "default": str(defaults.MAX_HEADER_BYTES),
                "help": "header field bytes per request (431 past it)",
            },
        ),
        (
            "--max-headers",
            {"default": str(defaults.MAX_HEADERS), "help": "header fields per request (431 past it)"},
        ),
        (
            "--header-timeout",
            {
                "default": str(defaults.HEADER_TIMEOUT_S),
                "help": "seconds to receive a request head (408 past it)",
            },
        ),
        (
            "--client-idle-timeout",
            {
                "default": str(defaults.CLIENT_IDLE_TIMEOUT_S),
                "help": "seconds a keep-alive client connection may sit idle",
            },
        ),
        (
            "--max-connections",
            {
                "default": str(defaults.MAX_CONNECTIONS),
                "help": "client connections per data listener (503 past it)",
            },
        ),
        (
            "--max-request-body-bytes",
            {
                "default": str(defaults.MAX_REQUEST_BODY_BYTES),
                "help": "largest request body, 0 for no limit (413 past it)",
            },
        ),
        (
            "--tail-ring",
            {
                "default": str(tail_defaults.ring_size),
                "help": "span records of unsampled requests held for tail keep, 0 turns it off",
            },
        ),
        (
            "--tail-ring-age",
            {"default": str(tail_defaults.ring_age_s), "help": "seconds a span record is held"},
        ),
        (
            "--tail-slow-ms",
            {
                "default": f"{tail_defaults.slow_ms:g}",
                "help": "a request at least this slow (and at its edge's p99) has its trace kept",
            },
        ),
        (
            "--tail-keep-rate",
            {"default": f"{tail_defaults.keep_rate:g}", "help": "traces kept per second at most"},
        ),
        (
            "--tail-header",
            {"default": "on", "help": "on or off: ask the calling sidecar to keep a trace (x-meshui-keep)"},
        ),
    ]


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m proxies",
        description="meshui sidecar proxy. Every flag can also be set as "
        "MESHUI_SIDECAR_<FLAG> (e.g. MESHUI_SIDECAR_TRACE_SAMPLE).",
    )
    for flag, options in _flags():
        env_name = ENV_PREFIX + flag[2:].replace("-", "_").upper()
        default = env.get(env_name, options.pop("default", None))
        if flag == "--token" and default is None:
            default = env.get("MESHUI_JOIN_TOKEN")
        if flag == "--control-ca" and default is None:
            default = env.get("MESHUI_CONTROL_CA")
        parser.add_argument(flag, default=default, **options)
    return parser


def parse_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> SidecarConfig:
    """Parse flags and environment; exits with a usage message naming the bad flag."""
    env = os.environ if env is None else env
    parser = build_parser(env)
    args = parser.parse_args(argv)
    for name in ("service", "version", "app"):
        if not getattr(args, name):
            parser.error(f"--{name} is required (or MESHUI_SIDECAR_{name.upper()})")

    def address(flag: str, value: str) -> tuple[str, int]:
        try:
            return parse_address(value, flag)
        except EndpointsError as exc:
            parser.error(str(exc))

    try:
        sample = float(args.trace_sample)
    except ValueError:
        parser.error(f"--trace-sample must be a number in [0, 1], got {args.trace_sample!r}")
    if not 0.0 <= sample <= 1.0:
        parser.error(f"--trace-sample must be in [0, 1], got {sample}")
    if args.control and not args.token:
        parser.error("--control needs --token, the service's join token (or MESHUI_JOIN_TOKEN)")
    identity_files = (args.cert, args.key, args.trust_bundle)
    if any(identity_files) and not all(identity_files):
        parser.error("a static identity needs all of --cert, --key and --trust-bundle")
    if not args.control and not args.endpoints:
        parser.error("give --control (dynamic endpoints) or --endpoints FILE (static set)")
    if args.control and (problem := control_tls_problem(args.control, args.control_ca)):
        parser.error(problem)
    # The same rules meshui applies to a hello (proxies.mesh.schema): a sidecar never starts
    # with a name the control plane would refuse.
    for flag, value, check in (
        ("--service", args.service, service_name_problem),
        ("--version", args.version, version_problem),
        ("--proxy-id", args.proxy_id, proxy_id_problem),
    ):
        if value is not None and (problem := check(value)) is not None:
            parser.error(f"{flag} {problem}")
    if args.advertise:
        address("--advertise", args.advertise)
        if (problem := address_problem(args.advertise)) is not None:
            parser.error(f"--advertise {problem}")

    def integer(flag: str, value: str) -> int:
        try:
            return int(value)
        except ValueError:
            parser.error(f"{flag} must be a whole number, got {value!r}")

    def seconds(flag: str, value: str) -> float:
        try:
            return float(value)
        except ValueError:
            parser.error(f"{flag} must be a number of seconds, got {value!r}")

    limits = ListenerLimits(
        max_target_bytes=integer("--max-target-bytes", args.max_target_bytes),
        max_header_bytes=integer("--max-header-bytes", args.max_header_bytes),
        max_headers=integer("--max-headers", args.max_headers),
        header_timeout_s=seconds("--header-timeout", args.header_timeout),
        client_idle_timeout_s=seconds("--client-idle-timeout", args.client_idle_timeout),
        max_connections=integer("--max-connections", args.max_connections),
        max_request_body_bytes=integer("--max-request-body-bytes", args.max_request_body_bytes),
    )
    problems = limits.validate()
    if problems:
        parser.error("; ".join(problems))
    def number(flag: str, value: str) -> float:
        try:
            return float(value)
        except ValueError:
            parser.error(f"{flag} must be a number, got {value!r}")

    if args.tail_header not in ("on", "off"):
        parser.error(f"--tail-header must be on or off, got {args.tail_header!r}")
    tail = TailKeepConfig(
        ring_size=integer("--tail-ring", args.tail_ring),
        ring_age_s=seconds("--tail-ring-age", args.tail_ring_age),
        slow_ms=number("--tail-slow-ms", args.tail_slow_ms),
        keep_rate=number("--tail-keep-rate", args.tail_keep_rate),
        header=args.tail_header == "on",
    )
    problems = tail.validate()
    if problems:
        parser.error("; ".join(problems))
    policy = Policy()
    if args.policy:
        try:
            policy = load_policy_file(args.policy)
        except PolicyError as exc:
            parser.error(f"--policy {args.policy}: {exc}")
    return SidecarConfig(
        service=args.service,
        version=args.version,
        app=address("--app", args.app),
        inbound=address("--inbound", args.inbound),
        outbound=address("--outbound", args.outbound),
        admin=address("--admin", args.admin),
        control=args.control or None,
        token=args.token or None,
        endpoints_file=args.endpoints or None,
        otlp=args.otlp or None,
        trace_sample=sample,
        proxy_id=args.proxy_id or None,
        advertise=args.advertise or None,
        log_level=args.log_level.upper(),
        policy_file=args.policy or None,
        control_ca=args.control_ca or None,
        policy=policy,
        limits=limits,
        tail=tail,
        identity_files=identity_files if all(identity_files) else None,
    )
