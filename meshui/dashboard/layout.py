"""A deterministic, layered left-to-right layout of the service graph.

Callers stand to the left of what they call: every service sits in the layer of the
longest call path that reaches it from a root (a service nobody calls), e.g.
``unknown -> frontend -> catalog/reviews/checkout -> inventory/ratings/payments``.
Cycles are broken by ignoring the edges that close them in a depth-first walk from the
roots in name order. Inside a layer services are ordered by the mean slot of their
callers (fewer crossings), then by name. The result depends only on the set of nodes and
edges, never on their order or on traffic numbers, so positions stay put as counts change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

Position = tuple[float, float]


def _acyclic_edges(nodes: list[str], edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The edges minus self-loops and the back edges of a DFS in name order."""
    successors: dict[str, list[str]] = defaultdict(list)
    has_caller: set[str] = set()
    for src, dst in sorted(edges):
        if src != dst:
            successors[src].append(dst)
            has_caller.add(dst)
    roots = [n for n in nodes if n not in has_caller]
    kept: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = done
    for start in roots + nodes:  # roots first; leftovers only exist inside cycles
        if start in state:
            continue
        state[start] = 1
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, i = stack[-1]
            children = successors[node]
            if i == len(children):
                state[node] = 2
                stack.pop()
                continue
            stack[-1] = (node, i + 1)
            child = children[i]
            if state.get(child) == 1:
                continue  # back edge: closes a cycle
            kept.add((node, child))
            if child not in state:
                state[child] = 1
                stack.append((child, 0))
    return kept


def layers(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layer of every node (0 for roots)."""
    names = sorted(set(nodes) | {n for e in edges for n in e})
    dag = _acyclic_edges(names, set(edges))
    predecessors: dict[str, list[str]] = defaultdict(list)
    indegree = dict.fromkeys(names, 0)
    for src, dst in dag:
        predecessors[dst].append(src)
        indegree[dst] += 1
    layer = dict.fromkeys(names, 0)
    ready = sorted(n for n in names if indegree[n] == 0)
    successors: dict[str, list[str]] = defaultdict(list)
    for src, dst in dag:
        successors[src].append(dst)
    while ready:  # Kahn's topological order
        node = ready.pop(0)
        for child in sorted(successors[node]):
            layer[child] = max(layer[child], layer[node] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
        ready.sort()
    return layer


def layered_layout(
    nodes: Iterable[str], edges: Iterable[tuple[str, str]],
    heights: Mapping[str, float] | None = None,
) -> dict[str, Position]:
    """``{service: (x, y)}``: x is the layer, y the slot, each layer centred on y = 0.

    The first service of a layer is at the top (largest y). A service takes one slot, or
    ``heights[service]`` (a service expanded into its instances takes more room).
    """
    tall = heights or {}
    edge_list = list(edges)
    layer = layers(nodes, edge_list)
    by_layer: dict[int, list[str]] = defaultdict(list)
    for name, index in layer.items():
        by_layer[index].append(name)
    callers: dict[str, set[str]] = defaultdict(set)
    for src, dst in edge_list:
        if src != dst:
            callers[dst].add(src)
    positions: dict[str, Position] = {}
    for index in sorted(by_layer):
        members = by_layer[index]

        def barycenter(name: str) -> float:
            # Mean height of the callers already placed, top first; uncalled ones last.
            placed = [-positions[c][1] for c in callers[name] if c in positions]
            return sum(placed) / len(placed) if placed else float("inf")

        members.sort(key=lambda name: (barycenter(name), name))
        sizes = [max(1.0, tall.get(name, 1.0)) for name in members]
        top = sum(sizes) / 2
        for name, size in zip(members, sizes, strict=True):
            positions[name] = (float(index), top - size / 2)
            top -= size
    return positions
