"""The forward queue's bounds and batches, and the forwarder's config and log throttle (no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.errors import ConfigError
from collector.forward_queue import JSON, PROTOBUF, Export, ForwardQueue
from collector.forwarder import ForwarderConfig, LogThrottle
from collector.receiver import ReceiverConfig
from collector.service import CollectorConfig
from tests.clock import FakeClock

TRACES = (Path(__file__).parent / "golden" / "traces.pb").read_bytes()


def export(signal: str = "traces", size: int = 10, content_type: str = PROTOBUF, items: int = 1) -> Export:
    return Export(signal, b"x" * size, content_type, items)


def test_the_queue_refuses_what_passes_its_bytes_or_its_exports() -> None:
    queue = ForwardQueue(max_bytes=25, max_exports=3)
    assert queue.offer(export(size=10)) and queue.offer(export(size=10))
    assert not queue.offer(export(size=6))  # 26 bytes
    assert queue.offer(export(size=5))
    assert not queue.offer(export(size=0))  # a fourth export
    assert (queue.bytes, queue.exports) == (25, 3)


def test_a_batch_taken_holds_its_room_until_it_is_released() -> None:
    queue = ForwardQueue(max_bytes=20, max_exports=10)
    queue.offer(export(size=20))
    batch = queue.take(max_request_bytes=100)
    assert batch is not None and queue.waiting() == 0
    assert not queue.offer(export(size=1))  # in flight, or waiting for a retry: still in memory
    queue.release(batch)
    assert (queue.bytes, queue.exports) == (0, 0) and queue.offer(export(size=1))


def test_protobuf_exports_are_joined_up_to_the_request_size_and_json_goes_alone() -> None:
    queue = ForwardQueue(max_bytes=1000, max_exports=100)
    for size in (10, 10, 10):
        queue.offer(export(size=size))
    queue.offer(export(size=10, content_type=JSON))
    queue.offer(export(size=10, content_type=JSON))
    queue.offer(export(size=50))
    sizes = []
    while (batch := queue.take(max_request_bytes=25)) is not None:
        sizes.append((batch.content_type, [len(e.payload) for e in batch.exports]))
        queue.release(batch)
    assert sizes == [
        (PROTOBUF, [10, 10]),
        (PROTOBUF, [10]),
        (JSON, [10]),
        (JSON, [10]),
        (PROTOBUF, [50]),  # larger than a request: alone, never split or refused
    ]


def test_joined_protobuf_exports_parse_as_one_export_holding_them_all() -> None:
    queue = ForwardQueue(max_bytes=10_000, max_exports=10)
    for _ in range(3):
        queue.offer(Export("traces", TRACES, PROTOBUF, 10))
    batch = queue.take(max_request_bytes=10_000)
    assert batch is not None and batch.items == 30
    one = ExportTraceServiceRequest.FromString(TRACES)
    joined = ExportTraceServiceRequest.FromString(batch.body())
    assert list(joined.resource_spans) == list(one.resource_spans) * 3


def test_signals_take_turns_so_a_burst_of_one_never_holds_the_other_back() -> None:
    queue = ForwardQueue(max_bytes=1000, max_exports=100)
    for _ in range(3):
        queue.offer(export("metrics", content_type=JSON))
    queue.offer(export("traces", content_type=JSON))
    order = []
    while (batch := queue.take(max_request_bytes=100)) is not None:
        order.append(batch.signal)
    assert order == ["traces", "metrics", "metrics", "metrics"]


def test_take_all_empties_the_queue_for_counting() -> None:
    queue = ForwardQueue(max_bytes=1000, max_exports=100)
    queue.offer(export("traces", items=4))
    queue.offer(export("metrics", items=5))
    assert sorted(e.items for e in queue.take_all()) == [4, 5]
    assert (queue.bytes, queue.exports, queue.take(100)) == (0, 0, None)


def test_the_log_throttle_says_how_many_lines_it_held_back() -> None:
    clock = FakeClock()
    throttle = LogThrottle(10.0, clock)
    assert throttle.allow("rejected") == 0
    assert throttle.allow("rejected") is None and throttle.allow("rejected") is None
    assert throttle.allow("queue_full") == 0  # its own key
    clock.advance(10.0)
    assert throttle.allow("rejected") == 2


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"endpoint": "grpc://tempo:4317"}, "forwarder.endpoint"),
        ({"endpoint": "http://user:pw@tempo:4318"}, "forwarder.endpoint"),
        ({"endpoint": "http://tempo:99999"}, "forwarder.endpoint"),
        ({"headers": (("Bad Name", "x"),)}, "forwarder.headers"),
        ({"headers": (("X-Token", "a\r\nInjected: yes"),)}, "forwarder.headers"),
        ({"headers": (("Content-Type", "text/plain"),)}, "forwarder.headers"),
        ({"signals": ("logs",)}, "forwarder.signals"),
        ({"queue_max_exports": 0}, "forwarder.queue_max_exports"),
        ({"timeout_s": 0}, "forwarder.timeout_s"),
        ({"max_retry_time_s": -1}, "forwarder.max_retry_time_s"),
        ({"drain_timeout_s": 30}, "forwarder.drain_timeout_s"),
    ],
)
def test_a_bad_forwarder_setting_is_refused_naming_its_key(changes: dict[str, object], key: str) -> None:
    config = ForwarderConfig(**{"endpoint": "http://tempo:4318", **changes})  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as raised:
        config.validate()
    assert raised.value.key == key


def test_forwarding_is_off_by_default_and_a_path_prefix_is_allowed() -> None:
    ForwarderConfig().validate()
    assert not ForwarderConfig().enabled
    auth = (("Authorization", "Bearer x"),)
    ForwarderConfig(endpoint="https://otlp.example.com/otlp", headers=auth).validate()


def test_the_forward_queue_must_hold_the_largest_export_the_receiver_takes() -> None:
    config = CollectorConfig(
        redis_url="redis://127.0.0.1:6379/0",
        receiver=ReceiverConfig(max_body_bytes=1024 * 1024),
        forwarder=ForwarderConfig(endpoint="http://tempo:4318", queue_max_bytes=1000),
    )
    with pytest.raises(ConfigError, match="forwarder.queue_max_bytes"):
        config.validate()
