"""What the service page shows of one service, from the graph, the sidecars and the policy.

Pure: the graph JSON (``GET /api/v1/graph``), the sidecars' sync state (``GET
/api/v1/proxies``) and the current document in; the page's JSON out. static/policy/service.js
draws its first frame from this and keeps it live from the same two endpoints, with the same
sums: the observed share of a version is its requests over every edge *into* the service
(each edge's ``by_version``) divided by all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from meshui.dashboard.source import window_label
from meshui.policy import authorization_page, effective, fields
from meshui.policy.fields import FAULT_ROUTE
from proxies.identity.spiffe import DEFAULT_TRUST_DOMAIN


class VersionTraffic(TypedDict):
    requests: int
    errors: int
    rps: float
    share: float  # of the requests into the service in the window, 0..1


class Golden(TypedDict):
    requests: int
    rps: float
    success: float | None  # 1 - error rate; None without requests
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class BreakerState(TypedDict):
    ejections: int
    overflows: int


def incoming(graph: Mapping[str, Any], service: str) -> list[Mapping[str, Any]]:
    return [e for e in graph.get("edges") or () if e.get("target") == service]


def observed_by_version(graph: Mapping[str, Any], service: str) -> dict[str, VersionTraffic]:
    """Per version, the calls into ``service`` in the graph's window; {} when none carry
    ``by_version`` (no traffic, or a collector that does not split by version)."""
    sums: dict[str, list[float]] = {}
    for edge in incoming(graph, service):
        for version, traffic in (edge.get("by_version") or {}).items():
            acc = sums.setdefault(str(version), [0, 0, 0.0])
            acc[0] += int(traffic.get("requests") or 0)
            acc[1] += int(traffic.get("errors") or 0)
            acc[2] += float(traffic.get("rps") or 0.0)
    total = sum(acc[0] for acc in sums.values())
    if not total:
        return {}
    return {version: {"requests": int(acc[0]), "errors": int(acc[1]),
                      "rps": round(acc[2], 3), "share": acc[0] / total}
            for version, acc in sorted(sums.items())}


def golden(graph: Mapping[str, Any], service: str) -> Golden | None:
    """The service's node numbers (what it served in the window), None when not in the graph."""
    node = next((n for n in graph.get("nodes") or () if n.get("id") == service), None)
    if node is None:
        return None
    requests = int(node["requests"])
    return {"requests": requests, "rps": node["rps"],
            "success": (1.0 - node["error_rate"]) if requests else None,
            "p50_ms": node["p50_ms"], "p95_ms": node["p95_ms"], "p99_ms": node["p99_ms"]}


def breaker_state(graph: Mapping[str, Any], service: str) -> BreakerState:
    """Ejections of the service's instances and breaker overflows, summed over its callers
    (the sidecars' edge events: proxies/telemetry/events.py)."""
    edges = incoming(graph, service)
    return {"ejections": sum(int((e.get("events") or {}).get("ejections", 0)) for e in edges),
            "overflows": sum(int((e.get("events") or {}).get("overflows", 0)) for e in edges)}


def instances(proxies: Iterable[Mapping[str, Any]], service: str) -> list[dict[str, Any]]:
    """The service's sidecars grouped by version, each with its policy sync state."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for proxy in proxies:
        if proxy["service"] != service:
            continue
        config = proxy["config"]
        groups.setdefault(proxy["version"], []).append({
            "proxy_id": proxy["proxy_id"], "address": proxy["address"],
            "connected": proxy["connected"], "state": config["state"],
            "revision_acked": config["revision_acked"], "nack_reason": config["nack_reason"]})
    return [{"version": version, "instances": rows} for version, rows in sorted(groups.items())]


def _at(value: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def editor_values(policy: Mapping[str, Any]) -> dict[str, Any]:
    """Each editor field's value in force (``policy``: ``effective.in_force``'s dict); the
    fault fields are read off the catch-all route ``FAULT_ROUTE``."""
    routes = policy.get("routes") or ()
    fault_route: Mapping[str, Any] = next((r for r in routes if r["name"] == FAULT_ROUTE), {})
    values: dict[str, Any] = {}
    for field in fields.FIELDS:
        where: Any = fault_route if field.path.startswith("fault.") else policy
        values[field.path] = _at(where, field.path)
    return values


def versions(service: str, policy: Mapping[str, Any], proxies: Iterable[Mapping[str, Any]],
             graph: Mapping[str, Any] | None) -> list[str]:
    """The versions the split editor offers: live instances', the split's, the graph's."""
    found = {p["version"] for p in proxies if p["service"] == service and p["version"]}
    found.update((policy.get("split") or {}).keys())
    for node in (graph or {}).get("nodes") or ():
        if node.get("id") == service:
            found.update(node.get("versions") or ())
    return sorted(found)


def page_json(service: str, graph: Mapping[str, Any] | None,
              proxy_rows: list[Mapping[str, Any]], revision: int,
              document: Mapping[str, Any], window: int,
              trust_domain: str = DEFAULT_TRUST_DOMAIN) -> dict[str, Any]:
    """Everything static/policy/service.js starts from (``json_script``); its
    ``authorization`` is static/policy/authorization.js's (``authorization_page``)."""
    policy = effective.in_force(document, service)
    return {
        "service": service,
        "revision": revision,
        "window": window,
        "window_label": window_label(window),
        "values": editor_values(policy),
        "split": policy.get("split") or {},
        "routes": [r for r in policy.get("routes") or () if r["name"] != FAULT_ROUTE],
        "versions": versions(service, policy, proxy_rows, graph),
        "fields": fields.page_json(),
        "fault_route": FAULT_ROUTE,
        "graph": None if graph is None else {
            "golden": golden(graph, service),
            "observed": observed_by_version(graph, service),
            "breaker": breaker_state(graph, service)},
        "instances": instances(proxy_rows, service),
        "marks": effective.marks_of(effective.parsed(document).for_service(service)),
        "authorization": authorization_page.editor_json(policy, graph, service, trust_domain),
    }
