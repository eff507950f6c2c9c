"""Span pairing: client and server spans become edges; what never pairs is counted."""

from __future__ import annotations

from collector import graphstore, graphwriter
from collector.records import Span, SpanGroup, TraceBatch
from collector.servicegraph import ServiceGraphConfig, ServiceGraphConnector
from tests.clock import FakeClock

T = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def span(
    span_id: int,
    parent: int,
    kind: int,
    ms: float = 5.0,
    failed: bool = False,
    http_status: int = 0,
    peer: str = "",
    trace: bytes = T,
) -> Span:
    return Span(
        trace,
        span_id.to_bytes(8, "big"),
        parent.to_bytes(8, "big") if parent else b"",
        kind,
        ms,
        failed,
        http_status,
        peer,
    )


def batch(service: str, *spans: Span, version: str = "") -> TraceBatch:
    return TraceBatch([SpanGroup(service, version, False, list(spans))], len(spans))


def setup(**config: object) -> tuple[ServiceGraphConnector, graphwriter.GraphWriter, FakeClock]:
    clock = FakeClock(100.0)  # the pairing store's monotonic clock
    writer = graphwriter.GraphWriter(clock=FakeClock(1000.0))
    return ServiceGraphConnector(writer, ServiceGraphConfig(**config), clock=clock), writer, clock  # type: ignore[arg-type]


def edges(writer: graphwriter.GraphWriter) -> dict[tuple[str, str], tuple[int, int]]:
    graph = graphstore.build_graph(writer.take().values(), 60, 1000.0)
    return {(e["source"], e["target"]): (e["requests"], e["errors"]) for e in graph["edges"]}


def test_a_client_span_and_its_server_child_make_one_edge_in_either_order() -> None:
    connector, writer, _ = setup()
    connector.consume(batch("api", span(2, 1, kind=2)))  # server first
    connector.consume(batch("web", span(1, 0, kind=3)))
    connector.consume(batch("web", span(3, 0, kind=3)))  # client first
    connector.consume(batch("api", span(4, 3, kind=2)))
    assert edges(writer) == {("web", "api"): (2, 0)}
    assert connector.stats.pairs == 2 and len(connector) == 0


def test_a_pair_is_an_error_when_either_span_failed_or_the_server_returned_5xx() -> None:
    connector, writer, _ = setup()
    connector.consume(batch("web", span(1, 0, 3, failed=True), span(3, 0, 3), span(5, 0, 3)))
    connector.consume(
        batch("api", span(2, 1, 2), span(4, 3, 2, http_status=502), span(6, 5, 2, http_status=404))
    )
    assert edges(writer) == {("web", "api"): (3, 2)}


def test_a_root_server_span_is_an_edge_from_unknown_and_counts_for_its_node() -> None:
    connector, writer, _ = setup()
    connector.consume(batch("front", span(1, 0, 2, ms=40.0), version="v3"))
    graph = graphstore.build_graph(writer.take().values(), 60, 1000.0)
    assert [(e["source"], e["target"], e["requests"]) for e in graph["edges"]] == [("unknown", "front", 1)]
    front = next(n for n in graph["nodes"] if n["id"] == "front")
    assert (front["requests"], front["versions"]) == (1, ["v3"])
    assert connector.stats.root_spans == 1


def test_a_pair_s_edge_is_split_by_the_server_span_s_version_in_either_order() -> None:
    connector, writer, clock = setup(ttl_s=10.0)
    connector.consume(batch("api", span(2, 1, kind=2), version="v2"))  # server first
    connector.consume(batch("web", span(1, 0, kind=3), span(3, 0, kind=3), span(5, 0, kind=3, peer="db")))
    connector.consume(batch("api", span(4, 3, kind=2), version="v1"))  # client first
    connector.consume(batch("front", span(7, 0, kind=2), version="v9"))  # a root span
    clock.advance(11.0)
    assert connector.sweep() == 1  # the client of db: a virtual edge, whose version is unknown
    graph = graphstore.build_graph(writer.take().values(), 60, 1000.0)
    split = {(e["source"], e["target"]): {v: s["requests"] for v, s in e["by_version"].items()}
             for e in graph["edges"]}
    assert split == {("web", "api"): {"v1": 1, "v2": 1}, ("web", "db"): {}, ("unknown", "front"): {"v9": 1}}


def test_unpaired_spans_expire_after_the_ttl_and_are_counted() -> None:
    connector, writer, clock = setup(ttl_s=10.0)
    connector.consume(batch("web", span(1, 0, 3), span(3, 0, 3, peer="payments")))
    clock.advance(9.9)
    assert connector.sweep() == 0
    clock.advance(0.2)
    assert connector.sweep() == 2
    assert connector.stats.expired_unpaired == 2
    assert edges(writer) == {("web", "payments"): (1, 0)}  # peer.service -> virtual edge
    assert len(connector) == 0


def test_a_late_partner_after_expiry_does_not_make_a_pair() -> None:
    connector, writer, clock = setup(ttl_s=1.0)
    connector.consume(batch("web", span(1, 0, 3)))
    clock.advance(2.0)
    connector.sweep()
    connector.consume(batch("api", span(2, 1, 2)))
    assert ("web", "api") not in edges(writer)
    assert connector.stats.pairs == 0


def test_a_full_store_drops_new_half_pairs_and_counts_them() -> None:
    connector, writer, _ = setup(max_items=2)
    connector.consume(batch("web", span(1, 0, 3), span(3, 0, 3), span(5, 0, 3)))
    assert len(connector) == 2
    assert connector.stats.dropped["pairing_store_full"] == 1
    connector.consume(batch("api", span(2, 1, 2)))  # completing a pair still works
    assert edges(writer)[("web", "api")] == (1, 0)


def test_spans_from_sidecars_are_not_paired() -> None:
    connector, writer, _ = setup()
    connector.consume(TraceBatch([SpanGroup("front", "v1", True, [span(1, 0, 2)])], 1))
    assert not writer.pending


def test_producer_and_consumer_pair_only_when_enabled() -> None:
    connector, writer, _ = setup()
    connector.consume(batch("orders", span(1, 0, 4)))
    connector.consume(batch("billing", span(2, 1, 5)))
    assert edges(writer) == {}
    connector, writer, _ = setup(pair_messaging=True)
    connector.consume(batch("orders", span(1, 0, 4)))
    connector.consume(batch("billing", span(2, 1, 5)))
    assert edges(writer) == {("orders", "billing"): (1, 0)}


async def test_half_pairs_waiting_at_shutdown_become_virtual_edges_or_are_counted_dropped() -> None:
    connector, writer, _ = setup()
    connector.consume(batch("web", span(1, 0, 3, peer="payments"), span(3, 0, 3)))
    connector.consume(batch("api", span(6, 5, 2)))  # its client never arrives
    await connector.shutdown()
    assert edges(writer) == {("web", "payments"): (1, 0)}  # as expiry would have done
    assert connector.stats.virtual_peer_edges == 1
    assert connector.stats.dropped["pairing_shutdown"] == 2
    assert connector.stats.as_dict()["pairing"]["dropped_shutdown"] == 2
    assert len(connector) == 0 and connector.stats.pending_pairs == 0
