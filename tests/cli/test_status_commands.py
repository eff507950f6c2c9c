"""meshctl proxy-status and stat against a real meshui: sidecar rows in the database, the
live graph in the suite's embedded Valkey, written as the collector writes it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import redis
from django.utils import timezone

from collector.graphwriter import GraphWriter
from meshui.policy.models import Revision
from tests.cli.conftest import Meshctl, live_instance
from tests.meshui.sample_graph import write_sample_graph

HOSTILE = "v1\x1b]0;pwned\x07\x1b[2J\r\u202e"


def test_proxy_status_shows_one_row_per_sidecar_with_its_sync_state(meshctl: Meshctl) -> None:
    an_hour_ago = timezone.now() - timedelta(hours=1)
    live_instance("catalog", "v2", "catalog-v2-0", config_nacked=1,
                  config_nack_reason="split.v3: no such version")
    live_instance("catalog", "v1", "catalog-v1-0", config_acked=1)
    live_instance("reviews", HOSTILE, "reviews-v1-0", connected_at=an_hour_ago)
    gone = live_instance("ratings", "v1", "ratings-v1-0", config_acked=0)
    gone.connected = False
    gone.save()
    assert meshctl("apply", "-f", "-", stdin="{}").code == 0
    # Published an hour ago: the sidecar that never answered is STALE, not PENDING.
    Revision.objects.filter(number=1).update(created_at=an_hour_ago)

    result = meshctl("proxy-status")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["NAME", "SERVICE", "VERSION", "CONFIG", "ENDPOINTS"]
    rows = [line.split("   ") for line in lines[1:5]]
    assert [[cell.strip() for cell in row if cell.strip()] for row in rows] == [
        ["catalog-v1-0", "catalog", "v1", "SYNCED (1)", "NOT_SENT (-)"],
        ["catalog-v2-0", "catalog", "v2", "NACKED (-)", "NOT_SENT (-)"],
        ["ratings-v1-0 (disconnected)", "ratings", "v1", "NOT_SENT (0)", "NOT_SENT (-)"],
        ["reviews-v1-0", "reviews", "v1\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\u202e", "STALE (-)",
         "NOT_SENT (-)"]]
    assert lines[0].index("CONFIG") == lines[1].index("SYNCED")
    assert lines[5] == "catalog-v2-0: config revision 1 NACKED: split.v3: no such version"
    assert lines[6] == "revision 1: 1/3 connected sidecars SYNCED, 1 STALE, 1 NACKED"
    assert len(lines) == 7
    assert "\x1b" not in result.out and "\r" not in result.out and "\u202e" not in result.out

    as_json = meshctl("proxy-status", "-o", "json").json()
    assert as_json == meshctl.api("/proxies")
    assert as_json["proxies"][3]["version"] == HOSTILE  # JSON keeps the value, escaped


def test_proxy_status_before_any_sidecar(meshctl: Meshctl) -> None:
    assert meshctl("proxy-status").out == "no sidecar has connected yet\n"


def test_stat_shows_golden_metrics_per_service(meshctl: Meshctl, redis_url: str) -> None:
    write_sample_graph(redis_url, seconds=3)
    result = meshctl("stat")
    assert result.code == 0, result.err
    header, *rows = result.out.splitlines()
    assert header.split() == ["NAME", "SUCCESS", "RPS", "P50", "P95", "P99"]
    names = [row.split()[0] for row in rows]
    assert names == sorted(names) and "catalog" in names and "unknown" not in names
    catalog = next(row.split() for row in rows if row.startswith("catalog "))
    graph = meshctl.api("/graph?window=60")
    node = next(n for n in graph["nodes"] if n["id"] == "catalog")
    assert catalog[1] == f"{100 * (1 - node['errors'] / node['requests']):.2f}%"
    assert catalog[2] == f"{node['rps']:.1f}"
    assert all(cell.endswith("ms") for cell in catalog[3:])
    as_json = meshctl("stat", "-o", "json", "--window", "30").json()
    assert as_json["window"] == 30
    assert {n["id"] for n in as_json["nodes"]} == {n["id"] for n in graph["nodes"]}


def test_stat_of_one_service_shows_its_inbound_and_outbound_edges(
    meshctl: Meshctl, redis_url: str
) -> None:
    write_sample_graph(redis_url, seconds=3)
    result = meshctl("stat", "catalog")
    assert result.code == 0, result.err
    blocks = result.out.split("\n\n")
    assert blocks[0].splitlines()[1].split()[0] == "catalog"
    inbound, outbound = blocks[1].splitlines(), blocks[2].splitlines()
    assert inbound[0] == "INBOUND" and inbound[1].split()[:2] == ["FROM", "SUCCESS"]
    assert [line.split()[0] for line in inbound[2:]] == ["frontend", "search"]
    assert outbound[0] == "OUTBOUND" and outbound[1].split()[0] == "TO"
    assert [line.split()[0] for line in outbound[2:]] == ["inventory"]
    cut = meshctl("stat", "catalog", "-o", "json").json()
    assert [n["id"] for n in cut["nodes"]] == ["catalog"]
    assert {(e["source"], e["target"]) for e in cut["edges"]} == {
        ("frontend", "catalog"), ("search", "catalog"), ("catalog", "inventory")}

    missing = meshctl("stat", "nosuch")
    assert missing.code == 1
    assert missing.err.startswith("meshctl: no traffic to or from nosuch in the last 60 s; "
                                  "services with traffic: auth, catalog, ")


def test_stat_escapes_a_hostile_service_name_from_telemetry(meshctl: Meshctl, redis_url: str
                                                            ) -> None:
    writer = GraphWriter()
    writer.add_edge("frontend", "evil\x1b[31m\x9b2J", 10, 1, {})
    writer.add_node("evil\x1b[31m\x9b2J", "v1", 10, 1, {})
    client: Any = redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    GraphWriter.queue_writes(pipe, writer.take())
    pipe.execute()
    client.close()
    for argv in (["stat"], ["stat", "frontend"], ["stat", "-o", "json"]):
        result = meshctl(*argv)
        assert result.code == 0, result.err
        assert "\x1b" not in result.out and "\x9b" not in result.out, argv
    assert "evil\\x1b[31m\\x9b2J" in meshctl("stat").out
