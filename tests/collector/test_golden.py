"""Golden files: OTLP inputs (protobuf and JSON) -> the graph they must produce."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector import graphstore, graphwriter, otlp_metrics, otlp_traces
from collector.servicegraph import ServiceGraphConfig, ServiceGraphConnector
from collector.sidecar_metrics import SidecarMetricsConnector
from tests.clock import FakeClock

GOLDEN = Path(__file__).parent / "golden"
NOW = 1_700_000_000.0


def graph_of(increments: dict[int, dict[str, int]]) -> graphstore.GraphJSON:
    return graphstore.build_graph(increments.values(), 60, NOW)


def check_golden(name: str, graph: Any) -> None:
    """The graph equals the expected file; with UPDATE_GOLDEN=1 a differing file is rewritten.

    A rewrite fails the test: a run that compared the graph with the file it had just
    written would pass whatever the code did. Review the diff, then run again without it.
    """
    path = GOLDEN / f"{name}.expected.json"
    expected = orjson.loads(path.read_bytes()) if path.exists() else None
    if os.environ.get("UPDATE_GOLDEN") and graph != expected:
        path.write_bytes(orjson.dumps(graph, option=orjson.OPT_INDENT_2) + b"\n")
        pytest.fail(f"{path.name} rewritten from this run's graph: review the diff, then run again")
    assert graph == expected


@pytest.mark.parametrize("encoding", ["pb", "json"])
def test_traces_golden_file_makes_the_expected_graph(encoding: str) -> None:
    body = (GOLDEN / f"traces.{encoding}").read_bytes()
    decode = otlp_traces.decode_protobuf if encoding == "pb" else otlp_traces.decode_json
    batch = decode(body)
    assert batch.span_count == 10
    assert batch.rejected.count == 1
    assert "trace_id" in batch.rejected.message

    monotonic = FakeClock(0.0)
    writer = graphwriter.GraphWriter(clock=FakeClock(NOW))
    connector = ServiceGraphConnector(writer, ServiceGraphConfig(ttl_s=10), clock=monotonic)
    connector.consume(batch)
    assert connector.stats.pairs == 2
    monotonic.advance(11.0)
    assert connector.sweep() == 3  # payments client, no-peer client, orphan server
    assert connector.stats.virtual_peer_edges == 1

    check_golden("traces", graph_of(writer.take()))


@pytest.mark.parametrize("encoding", ["pb", "json"])
def test_sidecar_metrics_golden_file_makes_the_expected_graph(encoding: str) -> None:
    body = (GOLDEN / f"sidecar_metrics.{encoding}").read_bytes()
    decode = otlp_metrics.decode_protobuf if encoding == "pb" else otlp_metrics.decode_json
    batch = decode(body)
    assert batch.point_count == 9  # 7 histogram points + 2 gauges that are not ours
    assert batch.rejected.count == 1
    assert "meshui.direction" in batch.rejected.message

    writer = graphwriter.GraphWriter(clock=FakeClock(NOW))
    SidecarMetricsConnector(writer).consume(batch)

    check_golden("sidecar_metrics", graph_of(writer.take()))


@pytest.mark.parametrize("encoding", ["pb", "json"])
def test_sidecar_policy_counters_golden_file_puts_the_events_on_their_edges(encoding: str) -> None:
    body = (GOLDEN / f"sidecar_policy_counters.{encoding}").read_bytes()
    decode = otlp_metrics.decode_protobuf if encoding == "pb" else otlp_metrics.decode_json
    batch = decode(body)
    # 1 histogram + 12 counter points from sidecars + 1 from a non-sidecar resource.
    assert batch.point_count == 14
    assert len(batch.counters) == 9  # every delta counter point with a destination
    assert batch.rejected.count == 2  # the cumulative retries, the fault with no destination
    assert "aggregation temporality must be delta" in batch.rejected.message

    writer = graphwriter.GraphWriter(clock=FakeClock(NOW))
    SidecarMetricsConnector(writer).consume(batch)

    check_golden("sidecar_policy_counters", graph_of(writer.take()))
