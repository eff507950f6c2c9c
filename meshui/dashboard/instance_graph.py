"""The graph at the instance level: the collector's traffic per instance, and the sidecars' live state.

The collector knows what each instance served in the window (``service.instance.id``); the
callers' sidecars know how their load balancers treat it now (their heartbeats,
meshui/registry/instance_state.py): each caller's share, the EWMA estimate, requests in
flight, ejection, pool overflow. ``merge_instances`` (pure) joins the two per node, and adds
the registered instances that served nothing in the window (an ejected instance gets no
traffic: it must still be shown, as out). ``aread_instance_graph`` / ``read_instance_graph``
do the reading for the API, the graph socket and the graph page.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, NotRequired, TypedDict

from asgiref.sync import sync_to_async

from collector.graphstore import GraphJSON, InstanceJSON
from meshui.dashboard.source import aread_graph, read_graph
from meshui.registry import instance_state
from meshui.registry.instance_views import CallerEntry, CallerShare, empty_load, instance_loads
from meshui.registry.models import Instance

__all__ = ["LiveInstanceJSON", "aread_instance_graph", "merge_instances", "read_instance_graph"]


class LiveInstanceJSON(InstanceJSON):
    """An instance at ``level=instance``: what it served, and how its callers balance to it."""

    callers: list[CallerShare]
    ewma_ms: float | None
    outstanding: int
    ejected: bool
    ejected_until: float | None  # epoch seconds, as every time in the graph
    overflow: int
    connected: bool
    last_seen: float | None


class Registered(TypedDict):
    proxy_id: str
    connected: bool
    last_seen: NotRequired[float | None]


IDLE: dict[str, Any] = {"requests": 0, "errors": 0, "rps": 0.0, "error_rate": 0.0,
                        "p50_ms": None, "p95_ms": None, "p99_ms": None}


def merge_instances(graph: GraphJSON, registered: Mapping[str, Iterable[Registered]],
                    callers: Mapping[str, Mapping[str, CallerEntry]], now: float) -> GraphJSON:
    """``graph`` (read with instances) with each node's instances carrying the live fields.

    A node lists the instances that served requests in the window, the connected ones of its
    service and the ones its callers report, by proxy id; one that served nothing has zero
    traffic. Pure: the graph, registry rows (by service), fresh caller reports (by service)
    and the time in; a new graph out.
    """
    nodes = []
    for node in graph["nodes"]:
        service = node["id"]
        served = {i["instance"]: i for i in node.get("instances", [])}
        rows = {row["proxy_id"]: row for row in registered.get(service, ())}
        loads = instance_loads(callers.get(service, {}), now)
        names = set(served) | {p for p, row in rows.items() if row["connected"]} | set(loads)
        instances: list[LiveInstanceJSON] = []
        for name in sorted(names):
            row = rows.get(name)
            live: dict[str, Any] = {
                **(served.get(name) or {"instance": name, **IDLE}),
                **(loads.get(name) or empty_load()),
                "connected": bool(row and row["connected"]),
                "last_seen": row.get("last_seen") if row else None,
            }
            instances.append(live)  # type: ignore[arg-type]
        nodes.append({**node, "instances": instances})
    return {**graph, "nodes": nodes}  # type: ignore[typeddict-item]


def registered_instances(services: Iterable[str]) -> dict[str, list[Registered]]:
    """The registry's instances of ``services``, by service (the database: call off the loop)."""
    found: dict[str, list[Registered]] = {}
    rows = (Instance.objects.filter(service__name__in=list(services))
            .values_list("service__name", "proxy_id", "connected", "last_seen"))
    for service, proxy_id, connected, last_seen in rows:
        found.setdefault(service, []).append({
            "proxy_id": proxy_id, "connected": connected,
            "last_seen": round(last_seen.timestamp(), 3) if last_seen else None})
    return found


async def aread_instance_graph(window: int) -> GraphJSON:
    """The graph with live instances; raises one of ``DATA_SOURCE_ERRORS``."""
    graph = await aread_graph(window, instances=True)
    services = [node["id"] for node in graph["nodes"]]
    now = time.time()
    registered = await sync_to_async(registered_instances)(services)
    _, callers = await instance_state.aread((), services, now)
    return merge_instances(graph, registered, callers, now)


def read_instance_graph(window: int) -> GraphJSON:
    """``aread_instance_graph`` for synchronous callers (the graph page's first frame)."""
    graph = read_graph(window, instances=True)
    services = [node["id"] for node in graph["nodes"]]
    now = time.time()
    _, callers = instance_state.read((), services, now)
    return merge_instances(graph, registered_instances(services), callers, now)
