from __future__ import annotations

import asyncio
import logging
import time

import pytest

from collector import service
from collector.receiver import ReceiverConfig
from collector.receiver_grpc import GrpcReceiverConfig
from collector.service import Collector, CollectorConfig


class NeverStops:
    async def start(self) -> None:
        pass

    async def shutdown(self) -> None:
        await asyncio.Event().wait()


async def test_a_component_that_hangs_at_shutdown_is_logged_and_left_behind(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(service, "COMPONENT_SHUTDOWN_TIMEOUT_S", 0.2)
    collector = Collector(
        CollectorConfig(
            redis_url=redis_url, receiver=ReceiverConfig(port=0), grpc_receiver=GrpcReceiverConfig(port=0)
        )
    )
    await collector.start()
    collector._components.append(NeverStops())

    started = time.monotonic()
    await collector.shutdown()

    assert time.monotonic() - started < 5
    assert "shutting down NeverStops took over" in caplog.text
    assert any(record.levelno == logging.ERROR for record in caplog.records)
