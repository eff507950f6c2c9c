"""The installed ``meshctl`` as a person runs it: a separate process against a live meshui.

``make install`` installs the project editable, which puts the console script beside the
venv's python; where it is not installed, the entry point named in pyproject.toml is run
the way the generated script runs it, so the test still proves that entry point works.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from tests.cli.conftest import Meshctl
from tests.meshui.test_imports import loaded_after
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def console_script() -> list[str]:
    installed = Path(sys.executable).with_name("meshctl")
    if installed.exists():
        return [str(installed)]
    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["meshctl"]
    module, function = entry.split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {function}; "
                                  f"sys.argv[0] = 'meshctl'; {function}()"]


def run(env: dict[str, str], *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean_env = {key: value for key, value in os.environ.items()
                 if not key.startswith(("MESHUI_", "MESHCTL_", "DJANGO_"))}
    return subprocess.run([*console_script(), *argv], input=stdin, env={**clean_env, **env},
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_console_script_applies_and_reads_back_through_the_api(meshctl: Meshctl) -> None:
    applied = run(meshctl.env, "apply", "-f", "-", "-m", "from a shell", stdin="{}")
    assert (applied.returncode, applied.stdout, applied.stderr) == (0, "revision 1 created\n", "")
    listed = run(meshctl.env, "history", "-o", "json")
    revisions: list[dict[str, Any]] = json.loads(listed.stdout)["revisions"]
    assert [(r["revision"], r["source"], r["message"]) for r in revisions] == [
        (1, "cli", "from a shell")]
    down = run({**meshctl.env, "MESHUI_URL": f"http://127.0.0.1:{free_port()}"}, "history")
    assert down.returncode == 3 and down.stderr.startswith("meshctl: cannot reach meshui")
    usage = run(meshctl.env, "nonsense")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1


def test_python_dash_m_is_the_same_command() -> None:
    result = subprocess.run([sys.executable, "-m", "meshui.cli", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("usage: meshctl ")


def test_the_cli_loads_no_django_and_no_web_app() -> None:
    every_module = (
        "import importlib, pkgutil, meshui.cli\n"
        "for module in pkgutil.walk_packages(meshui.cli.__path__, 'meshui.cli.'):\n"
        "    if not module.name.endswith('__main__'):\n"
        "        importlib.import_module(module.name)"
    )
    assert loaded_after(every_module, "django", "ninja", "celery", "redis", "meshui.policy",
                        "meshui.registry", "proxies", "collector") == []
