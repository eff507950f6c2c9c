"""What importing a part of the project loads: the sidecar never Django, ``meshui`` nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def loaded_after(code: str, *modules: str) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {list(modules)!r} if m in sys.modules]))"
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_importing_meshui_loads_neither_django_nor_celery() -> None:
    assert loaded_after("import meshui", "django", "celery") == []


def test_no_module_of_the_sidecar_imports_django_or_meshui() -> None:
    every_module = (
        "import importlib, pkgutil, proxies\n"
        "for module in pkgutil.walk_packages(proxies.__path__, 'proxies.'):\n"
        "    if not module.name.endswith('__main__'):\n"
        "        importlib.import_module(module.name)"
    )
    assert loaded_after(every_module, "django", "meshui", "celery", "channels") == []


def test_django_start_up_binds_the_shared_tasks_to_meshui_s_celery_app() -> None:
    code = (
        "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'meshui.settings'\n"
        "import django; django.setup()\n"
        "from meshui.registry.tasks import sweep_stale_instances\n"
        "assert sweep_stale_instances.app.main == 'meshui', sweep_stale_instances.app\n"
        "assert sweep_stale_instances.app.conf.broker_url == 'redis://127.0.0.1:1/0'"
    )
    env_code = "import os; os.environ['REDIS_URL'] = 'redis://127.0.0.1:1/0'\n" + code
    assert loaded_after(env_code, "celery") == ["celery"]
