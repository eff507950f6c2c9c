"""Real headless Chromium against a real uvicorn serving meshui.asgi: shared by browser tests."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.polling import wait_until
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
HAVE_CHROMIUM = Path(CHROMIUM).exists()
# Records every CSP violation (and any inline handler that ran) before the page's scripts.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sample || ""));
});
"""


def new_page(browser: Any, **options: Any) -> tuple[Any, list[str]]:
    """A page that records its console and its CSP violations (``csp_problems``)."""
    page = browser.new_page(**{"viewport": {"width": 1440, "height": 860}, **options})
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.add_init_script(WATCH_CSP)
    return page, console


def csp_problems(page: Any, console: list[str]) -> list[str]:
    """The CSP violations the page reported, and any console line about the CSP or a crash."""
    reported = page.evaluate("window.__csp")
    return reported + [line for line in console
                       if "Content Security Policy" in line or line.startswith("pageerror")]


def server_env(redis_url: str, workdir: Path, **extra_env: str) -> dict[str, str]:
    """The environment of ``meshui_server``'s processes: its Redis, its SQLite database and
    its CA directory, so another process (an alert evaluator, a management command) can
    share them."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{workdir / 'meshui.sqlite3'}",
        "MESHUI_PUBLIC_READ": "true",
        "MESHUI_SECRET_KEY": "browser-test-secret",
        "MESHUI_CA_DIR": str(workdir / "ca"),
        "DJANGO_SETTINGS_MODULE": "meshui.settings",
        **extra_env,
    }


def join_tokens(redis_url: str, workdir: Path, services: Iterable[str], **extra_env: str
                ) -> dict[str, str]:
    """A join token per service for the sidecars of ``meshui_server(redis_url, workdir)``,
    made the way a harness makes them: ``manage.py join_token --service NAME`` (one line on
    stdout, the token), all at once."""
    env = server_env(redis_url, workdir, **extra_env)
    running = {service: subprocess.Popen(
        [sys.executable, "manage.py", "join_token", "--service", service,
         "--description", "browser test"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for service in sorted(set(services))}
    tokens = {}
    for service, process in running.items():
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        tokens[service] = out.strip()
    return tokens


@contextmanager
def meshui_server(redis_url: str, workdir: Path, users: dict[str, str] | None = None,
                  **extra_env: str) -> Iterator[str]:
    """uvicorn serving meshui.asgi on a free port with a freshly migrated SQLite DB; its URL.

    ``users`` maps a username to its role (viewer, operator, admin); each gets the password
    ``MESHUI_USER_PASSWORD`` (which must then be given)."""
    env = server_env(redis_url, workdir, **extra_env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                   check=True, timeout=60)
    if "MESHUI_USER_PASSWORD" in env:
        subprocess.run([sys.executable, "manage.py", "ensure_user", "admin", "--superuser"],
                       cwd=ROOT, env=env, check=True, timeout=60)
    for username, role in (users or {}).items():
        subprocess.run([sys.executable, "manage.py", "ensure_user", username, "--role", role],
                       cwd=ROOT, env=env, check=True, timeout=60, stdout=subprocess.DEVNULL)
    port = free_port()
    log_path = workdir / "uvicorn.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "meshui.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(url + "/accounts/login/", timeout=1).close()
            return True
        except OSError:
            assert process.poll() is None, log_path.read_text()
            return False

    try:
        wait_until(answers, timeout=20, interval=0.05)
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        log.close()
        raise
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


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright, for a module's tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def click_node(page: Any, service: str) -> None:
    """A real mouse click where Plotly drew ``service``'s node on the graph page."""
    x, y = page.evaluate("""(service) => {
        const gd = document.getElementById('graph');
        const trace = gd.data[1], i = trace.customdata.indexOf(service);
        const box = gd.getBoundingClientRect(), size = gd._fullLayout._size;
        return [box.left + size.l + gd._fullLayout.xaxis.l2p(trace.x[i]),
                box.top + size.t + gd._fullLayout.yaxis.l2p(trace.y[i])];
    }""", service)
    page.mouse.click(x, y)


def open_service_page(page: Any, service: str) -> None:
    """From the graph page to ``service``'s page: its name in the Services table (a click on
    its node expands it into its instances instead)."""
    page.locator(f'#nodes tr[data-node="{service}"] a.service-link').click()


def split_values(page: Any) -> dict[str, int]:
    """The service page's split sliders, by version."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.split-range')]
        .map((r) => [r.dataset.version, Number(r.value)]))""")
