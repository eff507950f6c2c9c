"""``python -m collector`` flags and the environment variables they default from."""

from __future__ import annotations

import pytest

from collector.__main__ import parse_args


def test_max_body_bytes_defaults_from_collector_max_body_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTOR_MAX_BODY_BYTES", "65536")
    assert parse_args(["--redis-url", "redis://127.0.0.1:6379/0"]).receiver.max_body_bytes == 65536
    config = parse_args(["--redis-url", "redis://127.0.0.1:6379/0", "--max-body-bytes", "1024"])
    assert config.receiver.max_body_bytes == 1024  # the flag wins


def test_a_max_body_bytes_that_is_not_an_integer_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTOR_MAX_BODY_BYTES", "8M")
    with pytest.raises(SystemExit, match="COLLECTOR_MAX_BODY_BYTES must be an integer"):
        parse_args(["--redis-url", "redis://127.0.0.1:6379/0"])
