"""The live service graph in Redis: how collectors write it and how everyone reads it.

One Redis hash per wall-clock second, ``meshui:graph:<epoch second>``, holds integer
counters that every collector increments with HINCRBY, so any number of collectors merge
exactly. Collectors write through ``collector.graphwriter`` in batches that Redis applies at
most once, so a batch resent after a lost reply is not counted twice. Fields (``\\x1f`` separates parts,
since service names may hold any printable):

    e␟<src>␟<dst>␟n        requests on the edge src -> dst (client side view)
    e␟<src>␟<dst>␟x        of which errors (5xx, or a failed span)
    e␟<src>␟<dst>␟h<i>     latency histogram bucket i (see proxies.telemetry.histogram)
    ev␟<src>␟<dst>␟<version>␟n / x / h<i>
                           the same for the requests on that edge that <version> of dst
                           answered (requests with no version count only in e␟...)
    n␟<svc>␟n / x / h<i>   the same for requests a service served (server side view)
    v␟<svc>␟<version>      requests served by that version of the service
    nv␟<svc>␟<version>␟n / x / h<i>
                           the same, with latency (the version's served series)
    i␟<svc>␟<instance>␟n / x / h<i>
                           requests served by one instance (its ``service.instance.id``,
                           for a sidecar its proxy id)
    es␟<src>␟<dst>␟n / x / h<i>
                           the edge src -> dst as the target's side timed it (server side);
                           the client side's latency less this is the network and queueing
    r␟<src>␟<dst>␟<event>  what traffic policy did on the edge src -> dst (sidecar counters;
                           ``proxies.telemetry.events`` names them: retries, ...)

A graph over the last ``window`` seconds reads ``window`` hashes and adds them up. The
reading half is pure (``build_graph``); ``fetch_graph``/``afetch_graph`` do the I/O for the
sync (Django) and async (collector, consumers) callers.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from proxies.telemetry import histogram
from proxies.telemetry.events import EVENT_KEYS

log = logging.getLogger(__name__)

KEY_PREFIX = "meshui:graph:"
SEP = "\x1f"
MAX_WINDOW = 3600
# The window a graph read covers unless told otherwise: the API's default ``window``, the
# graph page and its socket, and the graph the collector publishes to them.
DEFAULT_WINDOW = 60
# Keep a little more than the widest window so a query never reads a half-expired hash.
KEY_TTL = MAX_WINDOW + 60
UNKNOWN = "unknown"
class TrafficJSON(TypedDict):
    """What a node and an edge both carry: counts, rates and latency over the window."""

    requests: int
    errors: int
    rps: float
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class InstanceJSON(TrafficJSON):
    instance: str  # service.instance.id (a sidecar's proxy id)


class NodeJSON(TrafficJSON):
    id: str
    service: str
    versions: list[str]
    # Only in a graph read with ``instances=True`` (the API's ``level=instance``).
    instances: NotRequired[list[InstanceJSON]]


# How often traffic policy acted on an edge's requests over the window. Every edge has
# every key of ``proxies.telemetry.events.EVENT_KEYS``, in that order, 0 when nothing
# happened (docs/collector.md); the keys come from that list, not from a TypedDict here.
EdgeEventsJSON = dict[str, int]


class VersionTrafficJSON(TypedDict):
    """One version of an edge's target: its part of the edge's requests (the observed split)."""

    requests: int
    errors: int
    rps: float
    share: float  # of the edge's requests, 0..1
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class EdgeJSON(TrafficJSON):
    source: str
    target: str
    # The same calls as the target's side timed them (0 / null where no sidecar or SDK
    # span on that side reported them); network = client side - server side, per quantile.
    server_requests: int
    server_p50_ms: float | None
    server_p99_ms: float | None
    network_p50_ms: float | None
    network_p99_ms: float | None
    events: EdgeEventsJSON
    # Keyed by version, in version order. Requests that carried no version count in the
    # edge's totals only, so the shares may add up to less than 1.
    by_version: dict[str, VersionTrafficJSON]


class HiddenJSON(TypedDict):
    """What the node limit cut from the graph: services not shown, and edges touching them."""

    nodes: int
    edges: int


class GraphJSON(TypedDict):
    window: int
    generated_at: float
    nodes: list[NodeJSON]
    edges: list[EdgeJSON]
    hidden: HiddenJSON


def key_for(second: int) -> str:
    return f"{KEY_PREFIX}{second}"


def window_seconds(window: int, now: float) -> list[int]:
    """The ``window`` seconds ending with the current (partial) second."""
    last = int(now)
    return list(range(last - window + 1, last + 1))


def keys_for_window(window: int, now: float) -> list[str]:
    """Keys of the ``window`` seconds ending with the current (partial) second."""
    return [key_for(second) for second in window_seconds(window, now)]


# How many nodes a graph read returns unless told otherwise: the busiest ones.
DEFAULT_MAX_NODES = 100


def validate_window(window: int) -> int:
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"window must be between 1 and {MAX_WINDOW} seconds, got {window}")
    return window


@dataclass(slots=True)
class _Stats:
    requests: int = 0
    errors: int = 0
    latency: dict[int, int] = field(default_factory=dict)

    def add(self, kind: str, value: int) -> None:
        if kind == "n":
            self.requests += value
        elif kind == "x":
            self.errors += value
        elif kind.startswith("h"):
            try:
                index = int(kind[1:])
            except ValueError:  # not written by a collector
                return
            if histogram.MIN_INDEX <= index <= histogram.MAX_INDEX:  # else no bound is finite
                self.latency[index] = self.latency.get(index, 0) + value


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ratio(part: int, whole: int) -> float:
    """``part / whole`` rounded to 4 places, 0 when ``whole`` is; never above 1.

    Capped because a version's counts can pass its edge's only through foreign or clipped
    fields (``graphwriter`` files both under the same second), and a share says 0..1.
    """
    return round(min(part / whole, 1.0), 4) if whole else 0.0


def _summary(stats: _Stats, window: int, *, share_of: int | None = None) -> dict[str, Any]:
    """The JSON of a node's or an edge's traffic, or with ``share_of`` of one version's part.

    One place rounds both: a version's entry has ``share`` (of ``share_of`` requests, the
    edge's) where the edge has ``error_rate``, and is otherwise the same shape.
    """

    def q(p: float) -> float | None:
        value = histogram.quantile(stats.latency, p)
        return None if value is None else round(value, 3)

    summary: dict[str, Any] = {
        "requests": stats.requests,
        "errors": stats.errors,
        "rps": round(stats.requests / window, 3),
    }
    if share_of is None:
        summary["error_rate"] = _ratio(stats.errors, stats.requests)
    else:
        summary["share"] = _ratio(stats.requests, share_of)
    summary["p50_ms"] = q(0.50)
    summary["p95_ms"] = q(0.95)
    summary["p99_ms"] = q(0.99)
    return summary


def _by_version(versions: Mapping[str, _Stats] | None, edge: _Stats, window: int) -> dict[str, Any]:
    """An edge's ``by_version``: each version of its target that answered, in version order."""
    if not versions:
        return {}
    return {
        version: _summary(versions[version], window, share_of=edge.requests)
        for version in sorted(versions)
    }


def _server_side(client: _Stats, server: _Stats | None) -> dict[str, Any]:
    """An edge's server-side timing and what the client side adds to it (network, queueing).

    A difference of quantiles, not the quantile of per-request differences (that would need
    both halves of every request): it says how much slower the edge looks from the caller.
    """
    fields: dict[str, Any] = {"server_requests": server.requests if server else 0}
    for name, q in (("p50", 0.50), ("p99", 0.99)):
        theirs = histogram.quantile(server.latency, q) if server else None
        ours = histogram.quantile(client.latency, q)
        fields[f"server_{name}_ms"] = None if theirs is None else round(theirs, 3)
        fields[f"network_{name}_ms"] = (
            None if theirs is None or ours is None else round(max(ours - theirs, 0.0), 3))
    # In the TypedDict's order: requests, then both server quantiles, then both network ones.
    return {key: fields[key] for key in ("server_requests", "server_p50_ms", "server_p99_ms",
                                          "network_p50_ms", "network_p99_ms")}


def _events(counts: Mapping[str, int] | None) -> EdgeEventsJSON:
    found = counts or {}
    return {name: found.get(name, 0) for name in EVENT_KEYS}


def _busiest(
    services: set[str], nodes: Mapping[str, _Stats], edges: Mapping[tuple[str, str], _Stats], max_nodes: int
) -> set[str]:
    """The ``max_nodes`` busiest services: by requests served plus requests sent, then name.

    Requests sent count too, so a caller-only node (``unknown``, a load generator) that
    feeds the graph is not the first to go.
    """
    if len(services) <= max_nodes:
        return services
    traffic: dict[str, int] = defaultdict(int)
    for name, stats in nodes.items():
        traffic[name] += stats.requests
    for (source, _), stats in edges.items():
        traffic[source] += stats.requests
    ranked = sorted(services, key=lambda name: (-traffic[name], name))
    return set(ranked[:max_nodes])


def build_graph(
    hashes: Iterable[Mapping[bytes | str, bytes | str]],
    window: int,
    now: float,
    *,
    max_nodes: int = DEFAULT_MAX_NODES,
    instances: bool = False,
) -> GraphJSON:
    """Add up per-second hashes into the graph the API and the dashboard show.

    With ``instances``, each node lists the instances that served its requests.

    Only the ``max_nodes`` busiest services are kept (by requests served plus requests
    sent, then name), with the edges between them; ``hidden`` says how many nodes and edges
    were cut, zeros when none were, so a page past the cardinality a browser can draw still
    says what it does not show.
    """
    if max_nodes < 1:
        raise ValueError(f"max_nodes must be >= 1, got {max_nodes}")
    edges: dict[tuple[str, str], _Stats] = defaultdict(_Stats)
    events: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    split: dict[tuple[str, str], dict[str, _Stats]] = defaultdict(lambda: defaultdict(_Stats))
    served: dict[tuple[str, str], _Stats] = defaultdict(_Stats)
    nodes: dict[str, _Stats] = defaultdict(_Stats)
    by_instance: dict[str, dict[str, _Stats]] = defaultdict(lambda: defaultdict(_Stats))
    versions: dict[str, set[str]] = defaultdict(set)
    # One pass over the window adds each field up across its seconds; only then is each
    # distinct field name split and filed, once. A 60 s window holds the same few hundred
    # names every second, so this splits ~60x fewer names than filing every field of every
    # hash (the publisher reads the graph twice a second; numbers in bench/RESULTS.md).
    totals: dict[bytes | str, int] = {}
    total = totals.get
    for fields in hashes:
        for raw_field, raw_value in fields.items():
            try:
                value = int(raw_value)
            except ValueError:  # not written by a collector: nothing to add up
                continue
            totals[raw_field] = total(raw_field, 0) + value
    for raw_field, value in totals.items():
        parts = _decode(raw_field).split(SEP)
        kind = parts[0]
        if kind == "e" and len(parts) == 4:
            edges[(parts[1], parts[2])].add(parts[3], value)
        elif kind == "ev" and len(parts) == 5:
            split[(parts[1], parts[2])][parts[3]].add(parts[4], value)
        elif kind == "n" and len(parts) == 3:
            nodes[parts[1]].add(parts[2], value)
        elif kind == "es" and len(parts) == 4:
            served[(parts[1], parts[2])].add(parts[3], value)
        elif kind == "i" and len(parts) == 4 and instances:
            by_instance[parts[1]][parts[2]].add(parts[3], value)
        elif kind == "v" and len(parts) == 3:
            versions[parts[1]].add(parts[2])
        elif kind == "r" and len(parts) == 4 and parts[3] in EVENT_KEYS:
            counts = events[(parts[1], parts[2])]
            counts[parts[3]] = counts.get(parts[3], 0) + value
    for pair in events:  # an edge known only by its events (no request ended yet) is shown too
        if pair not in edges:
            edges[pair] = _Stats()
    services = set(nodes) | {name for pair in edges for name in pair}
    kept = _busiest(services, nodes, edges, max_nodes)
    shown = {pair: stats for pair, stats in edges.items() if pair[0] in kept and pair[1] in kept}
    node_list: list[NodeJSON] = []
    for name in sorted(kept):
        node: NodeJSON = {
            "id": name,
            "service": name,
            "versions": sorted(versions.get(name, ())),
            **_summary(nodes.get(name, _Stats()), window),  # type: ignore[typeddict-item]
        }
        if instances:
            parts_of = by_instance.get(name, {})
            node["instances"] = [
                {"instance": instance, **_summary(parts_of[instance], window)}  # type: ignore[typeddict-item]
                for instance in sorted(parts_of)
            ]
        node_list.append(node)
    return {
        "window": window,
        "generated_at": round(now, 3),
        "nodes": node_list,
        "edges": [
            {
                "source": src,
                "target": dst,
                **_summary(stats, window),  # type: ignore[typeddict-item]
                **_server_side(stats, served.get((src, dst))),  # type: ignore[typeddict-item]
                "events": _events(events.get((src, dst))),
                "by_version": _by_version(split.get((src, dst)), stats, window),
            }
            for (src, dst), stats in sorted(shown.items())
        ],
        "hidden": {"nodes": len(services) - len(kept), "edges": len(edges) - len(shown)},
    }


def fetch_graph(
    redis_client: Any, window: int, now: float | None = None, *, max_nodes: int = DEFAULT_MAX_NODES,
    instances: bool = False,
) -> GraphJSON:
    """Read the graph with a synchronous redis-py client (the busiest ``max_nodes`` nodes)."""
    now = time.time() if now is None else now
    pipe = redis_client.pipeline(transaction=False)
    for key in keys_for_window(validate_window(window), now):
        pipe.hgetall(key)
    return build_graph(pipe.execute(), window, now, max_nodes=max_nodes, instances=instances)


async def afetch_graph(
    redis_client: Any, window: int, now: float | None = None, *, max_nodes: int = DEFAULT_MAX_NODES,
    instances: bool = False,
) -> GraphJSON:
    """Read the graph with an asyncio redis-py client (the busiest ``max_nodes`` nodes)."""
    now = time.time() if now is None else now
    pipe = redis_client.pipeline(transaction=False)
    for key in keys_for_window(validate_window(window), now):
        pipe.hgetall(key)
    return build_graph(await pipe.execute(), window, now, max_nodes=max_nodes, instances=instances)
