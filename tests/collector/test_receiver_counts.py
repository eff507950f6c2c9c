"""The receiver as an ASGI app on a fake pipeline: what /health answers, what is counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from collector.errors import Refusal
from collector.receiver import OTLPHttpReceiver
from collector.redis_exporter import RedisExporterConfig, RedisGraphExporter
from collector.stats import CollectorStats

TRACES = (Path(__file__).parent / "golden" / "traces.pb").read_bytes()  # 10 spans, 1 invalid


class Pipeline:
    """The rest of the collector, reduced to the answers the receiver asks for."""

    def __init__(self) -> None:
        self.refusal_now: Refusal | None = None
        self.queue_has_room = True
        self.problems: list[str] = []
        self.offered: list[Any] = []
        self.forwarded: list[tuple[str, bytes, str, int]] = []

    def refusal(self) -> Refusal | None:
        return self.refusal_now

    def health_problems(self) -> list[str]:
        return self.problems

    def limit(self, batch: Any) -> None:
        return None  # no cardinality limits here (tests/collector/test_cardinality.py)

    def offer(self, batch: Any, items: int) -> bool:
        if self.queue_has_room:
            self.offered.append(batch)
        return self.queue_has_room

    def forward(self, signal: str, payload: bytes, content_type: str, items: int) -> None:
        self.forwarded.append((signal, payload, content_type, items))


async def call(
    app: OTLPHttpReceiver,
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str = "application/x-protobuf",
) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"content-type", content_type.encode())],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


async def test_health_is_200_ok_with_the_counters_when_nothing_is_wrong() -> None:
    app = OTLPHttpReceiver(Pipeline())
    status, headers, body = await call(app, "GET", "/health")
    health = orjson.loads(body)
    assert (status, headers[b"content-type"]) == (200, b"application/json")
    assert (health["status"], health["problems"], health["received_spans"]) == ("ok", [], 0)


async def test_health_is_503_saying_what_is_wrong_when_the_pipeline_is_degraded() -> None:
    pipeline = Pipeline()
    pipeline.problems = ["redis unreachable: Connection refused"]
    status, _, body = await call(OTLPHttpReceiver(pipeline), "GET", "/health")
    health = orjson.loads(body)
    assert status == 503
    assert (health["status"], health["problems"]) == ("degraded", ["redis unreachable: Connection refused"])
    assert "received_spans" in health  # the counters are still there to read


def test_the_exporter_reports_a_write_backlog_over_its_limit_as_a_problem() -> None:
    stats = CollectorStats()
    exporter = RedisGraphExporter(None, RedisExporterConfig(max_pending_fields=3), stats)
    assert exporter.problems() == [] and exporter.refusal() is None
    stats.pending_fields = 4
    assert exporter.problems() == ["write backlog over its limit: 4 graph fields waiting, limit 3"]
    assert exporter.refusal() == Refusal(
        "write_backlog_full", "the collector's write backlog is full; retry later"
    )


async def test_a_refused_export_counts_one_request_and_its_spans_and_is_not_received() -> None:
    pipeline = Pipeline()
    app = OTLPHttpReceiver(pipeline)
    pipeline.refusal_now = Refusal("write_backlog_full", "the collector's write backlog is full")
    status, headers, _ = await call(app, "POST", "/v1/traces", TRACES)
    assert (status, headers[b"retry-after"]) == (503, b"1")
    pipeline.refusal_now = None
    pipeline.queue_has_room = False
    assert (await call(app, "POST", "/v1/traces", TRACES))[0] == 503
    stats = app.stats
    assert stats.refused == {"write_backlog_full": 1, "queue_full": 1}  # requests
    assert stats.refused_items == {("traces", "write_backlog_full"): 10, ("traces", "queue_full"): 10}
    assert (stats.received_spans, stats.rejected_spans) == (0, 0)

    pipeline.queue_has_room = True  # the sender's retry is accepted: counted once
    assert (await call(app, "POST", "/v1/traces", TRACES))[0] == 200
    assert (stats.received_spans, stats.rejected_spans) == (10, 1)
    assert stats.as_dict()["refused_spans"] == {"queue_full": 10, "write_backlog_full": 10}


async def test_metrics_show_refused_requests_and_refused_items_apart() -> None:
    pipeline = Pipeline()
    app = OTLPHttpReceiver(pipeline)
    pipeline.refusal_now = Refusal("redis_unavailable", "Redis is unreachable; retry later")
    await call(app, "POST", "/v1/traces", TRACES)
    text = (await call(app, "GET", "/metrics"))[2].decode()
    assert (
        "# HELP meshui_collector_refused_total Export requests refused with 503 "
        "(the sender retries them), by reason."
    ) in text
    assert 'meshui_collector_refused_total{reason="redis_unavailable"} 1' in text
    assert 'meshui_collector_refused_items_total{signal="traces",reason="redis_unavailable"} 10' in text
    assert 'meshui_collector_received_total{signal="traces"} 0' in text
    assert "to their peer (peer.service, else server.address)." in text


async def test_a_bad_body_gets_400_even_while_exports_are_refused() -> None:
    pipeline = Pipeline()
    pipeline.refusal_now = Refusal("redis_unavailable", "Redis is unreachable; retry later")
    app = OTLPHttpReceiver(pipeline)
    assert (await call(app, "POST", "/v1/traces", b"\xff\xff\xff garbage"))[0] == 400
    assert app.stats.refused == {}


async def test_only_an_accepted_export_is_handed_to_the_forwarder_once_as_received() -> None:
    pipeline = Pipeline()
    app = OTLPHttpReceiver(pipeline)
    pipeline.refusal_now = Refusal("queue_full", "the collector's queue is full; retry later")
    assert (await call(app, "POST", "/v1/traces", TRACES))[0] == 503
    assert (await call(app, "POST", "/v1/traces", b"\xff\xff\xff garbage"))[0] == 400
    assert pipeline.forwarded == []
    pipeline.refusal_now = None
    assert (await call(app, "POST", "/v1/traces", TRACES))[0] == 200  # the sender's retry
    # All ten spans, the one this collector rejected included: the backend judges for itself.
    assert pipeline.forwarded == [("traces", TRACES, "application/x-protobuf", 10)]
