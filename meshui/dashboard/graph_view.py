"""Which services the graph page draws expanded into their instances (docs/ui.md).

The page asks for it in its URL (``/?level=instance`` or ``/?expand=catalog,reviews``), so a
reload or a shared link shows the same, and over the graph socket
(``{"type": "view", "instances": true | false, "expand": [...]}``) when the user toggles
"Instances" or clicks a node. Both are read here, bounded and checked with the sidecar's
service-name rule; a view is a way of looking, not a change: nothing is written.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from proxies.mesh.schema import service_name_problem, shown

VIEW_MAX_BYTES = 16 * 1024  # a view message's text: MESHUI_GRAPH_MAX_NODES names fit easily


@dataclass(frozen=True, slots=True)
class GraphView:
    """``instances``: the whole graph expanded; else the services in ``expand``."""

    instances: bool = False
    expand: frozenset[str] = frozenset()

    @property
    def at_instance_level(self) -> bool:
        return self.instances or bool(self.expand)

    def expanded(self, graph: Mapping[str, Any]) -> Collection[str]:
        if self.instances:
            return {node["id"] for node in graph["nodes"]}
        return self.expand

    def as_json(self) -> dict[str, Any]:
        return {"instances": self.instances, "expand": sorted(self.expand)}


def _names(values: Iterable[Any]) -> frozenset[str]:
    names = list(values)
    limit = settings.MESHUI_GRAPH_MAX_NODES
    if len(names) > limit:
        raise ValueError(f"expand names {len(names)} services; at most {limit}")
    for name in names:
        problem = service_name_problem(name)
        if problem is not None:
            raise ValueError(f"expand: {problem}")
    return frozenset(names)


def view_from_message(message: Any) -> GraphView:
    """A socket ``view`` message; ValueError says what is wrong with it."""
    if not isinstance(message, dict) or message.get("type") != "view":
        raise ValueError(f"expected {{\"type\": \"view\", ...}}, got {shown(message)}")
    instances = message.get("instances", False)
    if not isinstance(instances, bool):
        raise ValueError(f"instances must be true or false, got {shown(instances)}")
    expand = message.get("expand", [])
    if not isinstance(expand, list):
        raise ValueError(f"expand must be a list of service names, got {shown(expand)}")
    return GraphView(instances, _names(expand))


def view_from_query(query: Mapping[str, str]) -> GraphView:
    """The page's ``?level=instance`` and ``?expand=a,b``; a bad name is left out (a page
    link, not an API: it still shows the graph)."""
    names = [n for n in query.get("expand", "").split(",")[: settings.MESHUI_GRAPH_MAX_NODES]
             if n and service_name_problem(n) is None]
    return GraphView(query.get("level") == "instance", frozenset(names))
