"""The alert tests that need PostgreSQL run in the suite's pass against the machine's server
(``make test`` in CI); on the embedded SQLite they are deselected, not skipped."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.test import Client

from meshui.accounts.roles import Role
from tests.meshui.users import make_operator, make_user


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        return
    kept = [item for item in items if item.get_closest_marker("postgresql") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture
def operator(meshui_settings: Any) -> Client:
    client = Client()
    client.force_login(make_operator("olivia"))
    return client


@pytest.fixture
def viewer(meshui_settings: Any) -> Client:
    client = Client()
    client.force_login(make_user("victor", Role.VIEWER))
    return client
