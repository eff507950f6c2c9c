"""Fixtures of the web-app tests: settings pointed at the test's Redis database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from meshui.layers import channel_layers_for

CONTROL_TOKEN = "test-control-token"


@pytest.fixture
def meshui_settings(settings: Any, redis_url: str) -> Any:
    """Settings for one test: its own Redis database, channel layer and control token."""
    settings.REDIS_URL = redis_url
    settings.CHANNEL_LAYERS = channel_layers_for(redis_url)
    settings.MESHUI_CONTROL_TOKEN = CONTROL_TOKEN
    settings.MESHUI_PUBLIC_READ = False
    settings.MESHUI_HEARTBEAT_INTERVAL = 5
    # A long-running meshui: its restart hold has ended (tests of the hold start their own).
    from meshui.registry.settle import settled_hold

    settled_hold()
    return settings


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
