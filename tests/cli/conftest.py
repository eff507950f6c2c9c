"""meshctl against a real meshui: pytest-django's live server, a real API token.

``live_server`` serves the project in a thread over real HTTP on a transactional test
database; settings are the web-app tests' (``meshui_settings``: the suite's embedded Valkey
through ``redis_url``). ``Meshctl`` runs ``meshui.cli.main.main`` in-process with its own
environment, so a test never reads the developer's config file or MESHUI_* variables.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.utils import timezone

from meshui.accounts.models import ApiToken
from meshui.accounts.roles import Role
from meshui.cli.main import main
from meshui.registry.models import Instance, Service
from tests.meshui.conftest import meshui_settings, session_ca_dir  # noqa: F401  (fixtures)
from tests.meshui.users import make_operator, make_user


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Meshctl:
    """``meshctl`` with an environment: MESHUI_URL, MESHUI_TOKEN, MESHCTL_CONFIG."""

    env: dict[str, str]
    url: str = ""
    token: str = ""

    def __call__(self, *argv: str, stdin: str = "", **env: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), env={**self.env, **env}, stdin=io.StringIO(stdin),
                    stdout=out, stderr=err)
        return Result(int(code), out.getvalue(), err.getvalue())

    def api(self, path: str) -> Any:
        """What the API itself answers (to compare ``-o json`` with)."""
        response = httpx.get(f"{self.url}/api/v1{path}",
                             headers={"Authorization": f"Bearer {self.token}"})
        response.raise_for_status()
        return response.json()


def token_for(username: str, role: Role) -> str:
    user = make_user(username, role)
    return ApiToken.issue(user, "laptop")[1]


@pytest.fixture
def server(live_server: Any, meshui_settings: Any) -> str:  # noqa: F811
    meshui_settings.MESHUI_SYNC_TIMEOUT = 1  # STALE one second after an unacknowledged push
    return str(live_server.url)


@pytest.fixture
def meshctl(server: str, tmp_path: Path) -> Meshctl:
    """meshctl logged in (by environment) as the operator olivia."""
    token = ApiToken.issue(make_operator("olivia"), "laptop")[1]
    env = {"MESHUI_URL": server, "MESHUI_TOKEN": token,
           "MESHCTL_CONFIG": str(tmp_path / "meshctl" / "config.yaml")}
    return Meshctl(env=env, url=server, token=token)


def live_instance(service: str, version: str, proxy_id: str, **fields: Any) -> Instance:
    """A connected sidecar's row, as the control channel records it."""
    row, _ = Service.objects.get_or_create(name=service)
    now = timezone.now()
    values = {"address": "127.0.0.1:1", "connected": True, "connected_at": now,
              "last_seen": now, **fields}
    return Instance.objects.create(proxy_id=proxy_id, service=row, version=version, **values)


def write_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)
