"""``python -m meshui.demo``: run the whole demo mesh until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType

from meshui.demo.mesh import Mesh, MeshConfig
from meshui.demo.processes import StartupError
from meshui.env import EnvError


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def main() -> int:
    try:
        config = MeshConfig.from_env()
    except EnvError as exc:
        print(f"meshui demo: {exc}", file=sys.stderr)
        return 2
    mesh = Mesh(config, say=lambda line: print(line, flush=True))
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    print(f"Starting the meshui demo (logs in {config.log_dir})", flush=True)
    try:
        mesh.start()
        print(
            "\n"
            f"  Dashboard   {config.dashboard_url}\n"
            f"  Login       {config.demo_user} / {config.demo_password} (an operator)\n"
            f"  meshctl     export MESHUI_URL={config.dashboard_url} "
            f"MESHUI_TOKEN={mesh.demo_token()}"
            + (f" SSL_CERT_FILE={config.control_ca}" if config.tls_cert else "") + "\n"
            + (f"  Admin       admin / {config.admin_password} (DEMO_ADMIN)\n"
               if config.admin_password is not None else "")
            + f"  Graph API   {config.dashboard_url}api/v1/graph?window=60\n"
            f"  OTLP        {config.collector_url} (HTTP), {config.host}:{config.collector_grpc_port}"
            " (gRPC): point any OpenTelemetry SDK here\n"
            f"  Load        {f'{config.rps:g} requests/s' if config.run_load else 'off'}"
            " (set DEMO_RPS to change; 0 turns it off)\n"
            "\nPress Ctrl-C to stop.\n",
            flush=True,
        )
        reported: set[str] = set()
        while True:
            for child in mesh.supervisor.exited():
                if child.name not in reported:
                    reported.add(child.name)
                    print(f"!! {child.name} exited with code {child.process.returncode}; "
                          f"its log ends:\n{child.log_tail(10)}", file=sys.stderr, flush=True)
            time.sleep(0.5)
    except StartupError as exc:
        print(f"\nThe demo could not start: {exc}", file=sys.stderr, flush=True)
        print("Ports are set by MESHUI_PORT, COLLECTOR_HTTP_PORT, COLLECTOR_GRPC_PORT and DEMO_BASE_PORT.",
              file=sys.stderr, flush=True)
        return 1
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        started = time.monotonic()
        count = len(mesh.supervisor.children)
        print(f"\nStopping {count} processes ...", flush=True)
        mesh.stop()
        print(f"Stopped in {time.monotonic() - started:.1f} s.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
