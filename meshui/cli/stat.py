"""``meshctl stat``'s tables from the live graph (``GET /api/v1/graph``), as ``linkerd viz stat``.

Pure: the graph's JSON in, rows of text out. A node's numbers are the requests the service
served; an edge's are the calls as the caller saw them (docs/api.md). An edge may carry
``by_version`` ({version: {requests, errors, rps, share, p50_ms, p95_ms, p99_ms}}): then
each version gets its own row with its share of the edge's requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STATS = ["SUCCESS", "RPS", "P50", "P95", "P99"]
UNKNOWN = "unknown"  # callers outside the mesh (collector.graphstore.UNKNOWN)


def success(requests: Any, errors: Any) -> str:
    """The share of requests that did not fail, or ``-`` with no requests."""
    if not isinstance(requests, int | float) or requests <= 0:
        return "-"
    failed = errors if isinstance(errors, int | float) else 0
    return f"{100.0 * (requests - failed) / requests:.2f}%"


def milliseconds(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.1f}ms" if value < 10 else f"{value:.0f}ms"


def rate(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "-"


def stats(traffic: Mapping[str, Any]) -> list[str]:
    """SUCCESS RPS P50 P95 P99 of a node, an edge or one version of an edge."""
    return [success(traffic.get("requests"), traffic.get("errors")), rate(traffic.get("rps")),
            milliseconds(traffic.get("p50_ms")), milliseconds(traffic.get("p95_ms")),
            milliseconds(traffic.get("p99_ms"))]


def service_rows(nodes: list[dict[str, Any]]) -> list[list[str]]:
    """One row per service, by name; callers outside the mesh only when they served any."""
    rows = []
    for node in sorted(nodes, key=lambda n: str(n.get("service", n.get("id", "")))):
        name = str(node.get("service", node.get("id", "?")))
        if name == UNKNOWN and not node.get("requests"):
            continue
        rows.append([name, *stats(node)])
    return rows


def shares(by_version: Mapping[str, Any]) -> dict[str, float]:
    """Each version's share of the edge's requests, in percent."""
    counts = {version: v.get("requests") for version, v in by_version.items()
              if isinstance(v, Mapping)}
    total = sum(c for c in counts.values() if isinstance(c, int | float))
    result = {}
    for version, v in by_version.items():
        if not isinstance(v, Mapping):
            continue
        count = counts.get(version)
        if total and isinstance(count, int | float):
            result[version] = 100.0 * count / total
        elif isinstance(v.get("share"), int | float):
            result[version] = 100.0 * v["share"]  # a fraction, as error_rate is
    return result


def edge_rows(edges: list[dict[str, Any]], peer: str) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the edges; ``peer`` is the end to show (``source`` or ``target``).

    With any ``by_version``, the table gains VERSION and SHARE: the edge's own row has
    version ``*`` and each version follows with its share of the edge's requests.
    """
    versioned = any(isinstance(e.get("by_version"), Mapping) and e["by_version"] for e in edges)
    head = "FROM" if peer == "source" else "TO"
    if not versioned:
        return [head, *STATS], [[str(e.get(peer, "?")), *stats(e)]
                                for e in sorted(edges, key=lambda e: str(e.get(peer, "")))]
    rows = []
    for edge in sorted(edges, key=lambda e: str(e.get(peer, ""))):
        name = str(edge.get(peer, "?"))
        rows.append([name, "*", "", *stats(edge)])
        by_version = edge.get("by_version")
        if isinstance(by_version, Mapping):
            percent = shares(by_version)
            for version in sorted(by_version):
                if isinstance(by_version[version], Mapping):
                    share = f"{percent[version]:.1f}%" if version in percent else "-"
                    rows.append([name, str(version), share, *stats(by_version[version])])
    return [head, "VERSION", "SHARE", *STATS], rows


def neighbourhood(graph: dict[str, Any], service: str) -> dict[str, Any] | None:
    """The graph cut to ``service`` and its edges (None when it had no traffic)."""
    nodes = [n for n in graph.get("nodes", []) if service in (n.get("service"), n.get("id"))]
    edges = [e for e in graph.get("edges", []) if service in (e.get("source"), e.get("target"))]
    if not nodes and not edges:
        return None
    return {**graph, "nodes": nodes, "edges": edges}
