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


def test_the_front_door_limits_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTOR_MAX_HEADER_BYTES", "4096")
    monkeypatch.setenv("COLLECTOR_MAX_SERVICES", "50")
    monkeypatch.setenv("COLLECTOR_MAX_EDGES", "60")
    monkeypatch.setenv("COLLECTOR_MAX_SERIES", "70")
    config = parse_args(["--redis-url", "redis://127.0.0.1:6379/0", "--max-edges", "61"])
    assert config.receiver.max_header_bytes == 4096
    assert (config.cardinality.max_services, config.cardinality.max_edges, config.cardinality.max_series) == (
        50,
        61,
        70,
    )


@pytest.mark.parametrize(
    ("flags", "key"),
    [
        (["--max-header-bytes", "100"], "receiver.max_header_bytes"),
        (["--max-services", "0"], "cardinality.max_services"),
        (["--max-series", "-1"], "cardinality.max_series"),
    ],
)
def test_a_limit_out_of_range_stops_the_start_naming_its_key(
    flags: list[str], key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--redis-url", "redis://127.0.0.1:6379/0", *flags])
    assert key in capsys.readouterr().err


def test_the_grpc_port_is_4317_by_default_and_can_be_moved_or_turned_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COLLECTOR_GRPC_PORT", raising=False)
    url = ["--redis-url", "redis://127.0.0.1:6379/0"]
    default = parse_args(url).grpc_receiver
    assert (default.enabled, default.port, default.max_message_bytes) == (True, 4317, 8 * 1024 * 1024)
    monkeypatch.setenv("COLLECTOR_GRPC_PORT", "off")
    assert not parse_args(url).grpc_receiver.enabled
    moved = parse_args([*url, "--grpc-port", "0", "--host", "::1", "--max-body-bytes", "4096"]).grpc_receiver
    assert (moved.enabled, moved.port, moved.host, moved.max_message_bytes) == (True, 0, "::1", 4096)


@pytest.mark.parametrize("value", ["grpc", "70000"])
def test_a_bad_grpc_port_stops_the_start(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--redis-url", "redis://127.0.0.1:6379/0", "--grpc-port", value])
    assert "grpc" in capsys.readouterr().err


def test_forwarding_is_off_unless_an_endpoint_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLLECTOR_FORWARD_ENDPOINT", raising=False)
    assert not parse_args(["--redis-url", "redis://127.0.0.1:6379/0"]).forwarder.enabled


def test_the_forward_flags_and_their_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTOR_FORWARD_ENDPOINT", "http://tempo:4318")
    monkeypatch.setenv("COLLECTOR_FORWARD_HEADERS", "Authorization=Bearer%20abc,X-Scope-OrgID=team-a")
    monkeypatch.setenv("COLLECTOR_FORWARD_SIGNALS", "traces")
    monkeypatch.setenv("COLLECTOR_FORWARD_QUEUE_BYTES", "16777216")
    monkeypatch.setenv("COLLECTOR_FORWARD_TIMEOUT", "2.5")
    config = parse_args(["--redis-url", "redis://127.0.0.1:6379/0", "--forward-queue-exports", "50",
                         "--forward-max-retry-time", "60"]).forwarder
    assert config.endpoint == "http://tempo:4318" and config.signals == ("traces",)
    assert config.headers == (("Authorization", "Bearer abc"), ("X-Scope-OrgID", "team-a"))
    assert (config.queue_max_bytes, config.queue_max_exports) == (16777216, 50)
    assert (config.timeout_s, config.max_retry_time_s) == (2.5, 60.0)
    flags = parse_args(
        ["--redis-url", "redis://127.0.0.1:6379/0", "--forward-header", "Authorization=Basic eA=="]
    )
    # The flag wins over the environment; split at the first "=".
    assert flags.forwarder.headers == (("Authorization", "Basic eA=="),)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--forward-endpoint", "tempo:4318"], "forwarder.endpoint"),
        (["--forward-endpoint", "http://tempo:4318", "--forward-signals", "logs"], "forwarder.signals"),
        (["--forward-header", "no-equals-sign"], "expected NAME=VALUE"),
    ],
)
def test_a_bad_forward_setting_stops_the_start(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--redis-url", "redis://127.0.0.1:6379/0", *flags])
    assert message in capsys.readouterr().err
