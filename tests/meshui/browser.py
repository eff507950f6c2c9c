"""Real headless Chromium against a real uvicorn serving meshui.asgi: shared by browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
HAVE_CHROMIUM = Path(CHROMIUM).exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def meshui_server(redis_url: str, workdir: Path, **extra_env: str) -> Iterator[str]:
    """uvicorn serving meshui.asgi on a free port with a freshly migrated SQLite DB; its URL."""
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{workdir / 'meshui.sqlite3'}",
        "MESHUI_PUBLIC_READ": "true",
        "MESHUI_SECRET_KEY": "browser-test-secret",
        "MESHUI_CONTROL_TOKEN": "browser-test-token",
        "DJANGO_SETTINGS_MODULE": "meshui.settings",
        **extra_env,
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                   check=True, timeout=60)
    if "MESHUI_USER_PASSWORD" in env:
        subprocess.run([sys.executable, "manage.py", "ensure_user", "admin", "--superuser"],
                       cwd=ROOT, env=env, check=True, timeout=60)
    port = free_port()
    log_path = workdir / "uvicorn.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "meshui.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url + "/accounts/login/", timeout=1).close()
            break
        except OSError:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "uvicorn did not start in time"
            time.sleep(0.05)  # start-up poll of a child process, with the deadline above
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # uvicorn waits for open connections to finish; a test that leaves a page open
            # must not hang the suite (seen once here under load, not reproduced since).
            process.kill()
            process.wait(timeout=10)
        log.close()
