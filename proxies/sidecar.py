"""A sidecar's lifecycle: listeners, admin port, endpoints source, telemetry, control channel."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from proxies.admin.server import AdminProtocol
from proxies.config import SidecarConfig
from proxies.dataplane.limits import ListenerLimits, within_fd_limit
from proxies.dataplane.listener import InboundListener
from proxies.dataplane.plane import DataPlane
from proxies.dataplane.upstream import Connector, open_tcp
from proxies.identity.tls import IdentityError, MeshIdentity
from proxies.mesh.endpoints import EndpointRegistry, EndpointsError
from proxies.mesh.schema import HEARTBEAT_EJECTIONS_MAX
from proxies.policy.store import PolicyStore
from proxies.telemetry.tailkeep import TailKeeper
from proxies.traffic.report import UpstreamReport

if TYPE_CHECKING:
    from proxies.control.client import ControlClient

log = logging.getLogger("proxies.sidecar")

SIDECAR_VERSION = "0.1.0"
BACKLOG = 1024


def load_endpoints_file(path: str) -> tuple[int, Any]:
    """Read a static endpoints file: ``{service: [...]}`` or ``{"version": n, "services": {...}}``."""
    with open(path, "rb") as f:
        data = orjson.loads(f.read())
    if isinstance(data, dict) and "services" in data and isinstance(data.get("services"), dict):
        return data.get("version", 1), data["services"]
    return 1, data


class Sidecar:
    """Owns everything one sidecar process runs."""

    def __init__(
        self,
        config: SidecarConfig,
        telemetry: Any,
        trace_incoming: Callable[..., Any],
        span_factory: Callable[..., Any] | None = None,
        proxy_id: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        connector: Connector = open_tcp,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng
        self.connector = connector  # how the data plane opens upstream connections
        # The --policy file (validated by parse_config) or every default, until the control
        # channel sends a config revision.
        self.policies = PolicyStore(config.policy, config.policy_file or "defaults")
        self.telemetry = telemetry
        self.proxy_id = proxy_id or config.proxy_id or default_proxy_id(config)
        self.registry = EndpointRegistry()
        self.trace_incoming = trace_incoming
        self.span_factory = span_factory
        self.plane: DataPlane | None = None
        self.tail: TailKeeper | None = None
        self.control: ControlClient | None = None
        # mTLS: a certificate from meshui's CA (over the control channel) or the static one
        # of --cert/--key/--trust-bundle; without either, the data path is plaintext only.
        self.identity: MeshIdentity | None = (
            MeshIdentity(config.service) if config.control or config.identity_files else None
        )
        self.servers: list[Any] = []  # asyncio.Server, and the InboundListener
        self.listening = False
        self.started_at = time.monotonic()
        self.upstream_report = UpstreamReport()

    async def start(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        if config.identity_files is not None:
            self._load_static_identity(*config.identity_files)
        await self.telemetry.start()
        if config.tail.enabled and config.otlp:  # without a collector a kept span goes nowhere
            self.tail = TailKeeper(config.tail, self.telemetry)
            watch = getattr(self.telemetry, "watch_intervals", None)
            if watch is not None:  # the real Telemetry: its intervals feed the slow thresholds
                watch(self.tail.observe)
        self.plane = DataPlane(
            service=config.service,
            version=config.version,
            app=config.app,
            telemetry=self.telemetry,
            trace_incoming=self.trace_incoming,
            trace_sample=config.trace_sample,
            span_factory=self.span_factory,
            registry=self.registry,
            loop=loop,
            policies=self.policies,
            clock=self.clock,
            rng=self.rng,
            connector=self.connector,
            limits=fit_fd_limit(config.limits),
            tail=self.tail,
            identity=self.identity,
        )
        self.plane.start()
        if config.endpoints_file:
            try:
                version, services = load_endpoints_file(config.endpoints_file)
                snapshot = self.registry.apply(version, services)
            except (OSError, orjson.JSONDecodeError, EndpointsError) as exc:
                raise SystemExit(f"cannot use endpoints file {config.endpoints_file}: {exc}") from exc
            log.info("static endpoints from %s: %s", config.endpoints_file, snapshot.known)
        # The inbound port tells mutual TLS from plaintext itself (proxies.dataplane.listener).
        self.servers.append(InboundListener(self.plane, *config.inbound, backlog=BACKLOG))
        log.info("inbound listener on %s:%d", *config.inbound)
        for name, (host, port), factory in (
            ("outbound", config.outbound, self.plane.downstream_factory(True)),
            ("admin", config.admin, lambda: AdminProtocol(self)),
        ):
            server = await loop.create_server(factory, host, port, reuse_address=True, backlog=BACKLOG)
            self.servers.append(server)
            log.info("%s listener on %s:%d", name, host, port)
        if config.admin[0] not in ("127.0.0.1", "::1", "localhost"):
            log.warning("admin listener is not on loopback (%s); anyone can read it", config.admin[0])
        self.listening = True
        if config.control:
            from proxies.control.client import ControlClient  # websockets only when needed
            from proxies.mesh.schema import join_address

            inbound = config.advertise or join_address(*config.inbound)
            self.control = ControlClient(
                config.control,
                config.token or "",
                {
                    "proxy_id": self.proxy_id,
                    "service": config.service,
                    "version": config.version,
                    "address": inbound,
                    "admin": join_address(*config.admin),
                    "pid": os.getpid(),
                    "sidecar_version": SIDECAR_VERSION,
                    # meshui sends export_traces frames only to sidecars that hold a ring.
                    "tail_keep": self.tail is not None,
                },
                self.registry,
                self.heartbeat_state,
                policy_store=self.policies,
                tail=self.tail,
                # A static identity is not renewed through meshui.
                identity=self.identity if config.identity_files is None else None,
                ca_file=config.control_ca,
            )
            self.control.start()
        log.info(
            "sidecar %s ready to serve %s %s (app %s:%d)",
            self.proxy_id,
            config.service,
            config.version,
            *config.app,
        )

    def _load_static_identity(self, cert: str, key: str, bundle: str) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        assert self.identity is not None
        try:
            with open(bundle) as f:
                self.identity.set_bundle(f.read(), "static")
            with open(key, "rb") as f:
                private = load_pem_private_key(f.read(), None)
            if not isinstance(private, ec.EllipticCurvePrivateKey):
                raise IdentityError("--key: not an ECDSA key")
            with open(cert) as f:
                self.identity.install(private, f.read())
        except (OSError, ValueError) as exc:  # IdentityError is a ValueError
            raise SystemExit(f"cannot use the static identity: {exc}") from exc

    async def stop(self) -> None:
        self.listening = False
        if self.control is not None:
            await self.control.stop()
        for server in self.servers:
            server.close()
        if self.plane is not None:
            self.plane.close()
        try:
            await self.telemetry.stop()
        except Exception:
            log.exception("telemetry did not stop cleanly")
        log.info("sidecar %s stopped", self.proxy_id)

    @property
    def ports(self) -> dict[str, int]:
        """Bound ports by listener (useful when started on port 0)."""
        names = ("inbound", "outbound", "admin")
        return {n: s.sockets[0].getsockname()[1] for n, s in zip(names, self.servers, strict=False)}

    def heartbeat_state(self) -> dict[str, Any]:
        return {
            "endpoints_version": self.registry.snapshot.version,
            "config_revision": self.policies.policy.revision if self.policies.source == "control" else None,
            "requests_total": self.telemetry.requests_total,
            "telemetry_dropped": self.telemetry.dropped_total,
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "ejected": self.ejected_now(),
            **self.upstreams_now(),
        }

    def upstreams_now(self) -> dict[str, Any]:
        """The balancer's view of each instance this sidecar sends to, with the requests since
        the previous heartbeat (proxies/traffic/report.py, docs/control-channel.md)."""
        plane = self.plane
        destinations = plane.destinations.values() if plane is not None else ()
        return self.upstream_report.take(destinations, self.clock(), time.time())

    def ejected_now(self) -> list[dict[str, Any]]:
        """The instances this sidecar's outlier detection keeps out now, for meshui's service
        page (docs/control-channel.md): ``until`` is when it may return, in epoch seconds."""
        plane = self.plane
        if plane is None:
            return []
        now, wall = self.clock(), time.time()
        ejected = [
            {"service": destination.name, "instance": endpoint.instance,
             "until": round(wall + endpoint.ejected_until - now, 1)}
            for destination in plane.destinations.values()
            for endpoint in destination.endpoints
            if endpoint.ejected_until
        ]
        return ejected[:HEARTBEAT_EJECTIONS_MAX]


def fit_fd_limit(limits: ListenerLimits) -> ListenerLimits:
    """Raise RLIMIT_NOFILE as far as the connection caps need; lower the caps if it cannot go further."""
    try:
        import resource
    except ImportError:  # not on POSIX: nothing to fit
        return limits
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    fitted, wanted = within_fd_limit(limits, soft, hard)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the file-descriptor limit from %d to %d: %s", soft, wanted, exc)
            fitted, _ = within_fd_limit(limits, soft, soft)
    if fitted.max_connections != limits.max_connections:
        log.warning(
            "--max-connections %d needs more file descriptors than the limit allows; using %d per listener",
            limits.max_connections,
            fitted.max_connections,
        )
    return fitted


def default_proxy_id(config: SidecarConfig) -> str:
    return f"{config.service}-{config.version}-{secrets.token_hex(3)}"
