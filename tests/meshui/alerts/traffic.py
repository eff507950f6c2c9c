"""Traffic written into a real Redis as the collector writes it, for the alerts' tests."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from collector.graphwriter import GraphWriter
from meshui.alerts.models import AlertRule
from proxies.telemetry import histogram
from tests.clock import FakeClock

# A multiple of every interval the tests use, so cycles start at whole tens.
BASE = 1_800_000_000
BUCKET = histogram.bucket_index(20.0)


def write(redis_client: Any, writer: GraphWriter) -> None:
    pipe = redis_client.pipeline(transaction=False)
    GraphWriter.queue_writes(pipe, writer.take())
    pipe.execute()


class Traffic:
    """Seconds of calls on edges (and what their targets served), written when asked."""

    def __init__(self, redis_client: Any) -> None:
        self.redis = redis_client
        self.clock = FakeClock(BASE)
        self.writer = GraphWriter(clock=self.clock)

    def calls(self, source: str, target: str, seconds: range, per_second: int,
              error_rate: float = 0.0, *, version: str = "v1", instance: str = "",
              latency_ms: float = 20.0, events: dict[str, int] | None = None) -> Traffic:
        errors = round(per_second * error_rate)
        bucket = histogram.bucket_index(latency_ms)
        for second in seconds:
            self.clock.now = second + 0.5
            self.writer.add_edge(source, target, per_second, errors, {bucket: per_second},
                                 version=version)
            self.writer.add_node(target, version, per_second, errors, {bucket: per_second},
                                 instance=instance or f"{target}-{version}-0")
            for name, count in (events or {}).items():
                self.writer.add_edge_counter(source, target, name, count, source, f"{source}-0")
        return self

    def write(self) -> None:
        write(self.redis, self.writer)


def make_rule(name: str = "payments errors", **fields: Any) -> AlertRule:
    """A rule saved as the API saves it (fields already checked)."""
    values = {"target": {"source": "checkout", "target": "payments"}, "metric": "error_rate",
              "window_s": 10, "op": ">", "fire": 0.2, "recover": 0.05, "for_s": 0,
              "keep_firing_s": 0} | fields
    now = timezone.now()
    return AlertRule.objects.create(name=name, created_at=now, updated_at=now, **values)
