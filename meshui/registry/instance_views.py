"""Each instance as its callers' load balancers see it, from their heartbeats. Pure.

Every sidecar balances on its own (peak-EWMA per caller, as Linkerd does), so "catalog-2
takes 40% of frontend's calls" is what frontend's sidecars sent it over their last
heartbeat interval, out of everything they sent to catalog. The stored reports
(instance_state.py) go in, with the time; the shapes the API and the graph show come out:

- ``caller_rows``: per reporting sidecar, its view of one instance (the state endpoint);
- ``instance_loads``: per instance of a service, its callers merged: the share per caller
  service, EWMA as the request-weighted mean, outstanding and overflow summed, ejected if
  any caller keeps it out (until the latest of those ejections);
- ``upstream_rows``: what one sidecar reports about the services it calls.

An ejection counts while its ``until`` is ahead (as GET /api/v1/ejections counts it). The
graph keeps times in epoch seconds as the rest of the graph does; the registry's endpoints
write them as ISO 8601 text in UTC as the rest of the registry does (``iso``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict


class StoredEndpoint(TypedDict):
    """A reported instance, as kept in Redis (heartbeats.EndpointReport)."""

    instance: str
    requests: int
    requests_total: int
    ewma_ms: float
    outstanding: int
    ejected: bool
    until: float | None
    overflow: int


class StoredUpstream(TypedDict):
    service: str
    overflow: dict[str, int]
    endpoints: list[StoredEndpoint]


class CallerEntry(TypedDict):
    """One sidecar's report of one destination service (``meshui:callers:<service>``)."""

    at: float  # when meshui received it, epoch seconds
    service: str  # the reporting sidecar's own service
    interval_s: float | None
    overflow: dict[str, int]
    endpoints: list[StoredEndpoint]


class CallerShare(TypedDict):
    service: str  # a calling service
    share: float  # of its requests to the instance's service, over the last interval
    requests: int


class LoadJSON(TypedDict):
    """An instance's callers' view, merged (the graph's live fields)."""

    callers: list[CallerShare]
    ewma_ms: float | None
    outstanding: int
    ejected: bool
    ejected_until: float | None
    overflow: int


def iso(epoch: float | None) -> str | None:
    """``2026-11-21T01:59:02.120000Z`` (the registry's timestamps), None for None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _ejected_until(endpoint: Mapping[str, Any], now: float) -> float | None:
    until = endpoint.get("until")
    return until if endpoint.get("ejected") and until is not None and until > now else None


def fresh(entries: Mapping[str, CallerEntry], now: float, stale_s: float) -> dict[str, CallerEntry]:
    """The reports received within ``stale_s`` (3 heartbeat intervals)."""
    return {reporter: entry for reporter, entry in entries.items() if now - entry["at"] <= stale_s}


def empty_load() -> LoadJSON:
    return {"callers": [], "ewma_ms": None, "outstanding": 0, "ejected": False,
            "ejected_until": None, "overflow": 0}


def instance_loads(entries: Mapping[str, CallerEntry], now: float) -> dict[str, LoadJSON]:
    """Per instance named in ``entries`` (one service's caller reports), its merged load."""
    sent: dict[str, int] = defaultdict(int)  # caller service -> its requests to the service
    seen: dict[str, list[tuple[str, StoredEndpoint]]] = defaultdict(list)
    for entry in entries.values():
        for endpoint in entry["endpoints"]:
            sent[entry["service"]] += endpoint["requests"]
            seen[endpoint["instance"]].append((entry["service"], endpoint))
    loads: dict[str, LoadJSON] = {}
    for instance, reports in seen.items():
        by_caller: dict[str, int] = defaultdict(int)
        for caller, endpoint in reports:
            by_caller[caller] += endpoint["requests"]
        untils = [u for _, e in reports if (u := _ejected_until(e, now)) is not None]
        weight = sum(e["requests"] for _, e in reports)
        if weight:
            ewma = sum(e["ewma_ms"] * e["requests"] for _, e in reports) / weight
        else:  # nobody sent it anything lately: each caller's estimate counts the same
            ewma = sum(e["ewma_ms"] for _, e in reports) / len(reports)
        loads[instance] = {
            "callers": [{"service": caller, "share": _share(requests, sent[caller]),
                         "requests": requests} for caller, requests in sorted(by_caller.items())],
            "ewma_ms": round(ewma, 3),
            "outstanding": sum(e["outstanding"] for _, e in reports),
            "ejected": bool(untils),
            "ejected_until": max(untils) if untils else None,
            "overflow": sum(e["overflow"] for _, e in reports),
        }
    return loads


def _endpoint_row(endpoint: StoredEndpoint, whole: int, now: float) -> dict[str, Any]:
    until = _ejected_until(endpoint, now)
    return {"share": _share(endpoint["requests"], whole), "requests": endpoint["requests"],
            "requests_total": endpoint["requests_total"], "ewma_ms": endpoint["ewma_ms"],
            "outstanding": endpoint["outstanding"], "ejected": until is not None,
            "ejected_until": iso(until), "overflow": endpoint["overflow"]}


def caller_rows(instance: str, entries: Mapping[str, CallerEntry], now: float
                ) -> list[dict[str, Any]]:
    """Per sidecar reporting ``instance``: its share of that sidecar's requests to the
    service, and the rest of its balancer's view; by caller service, then proxy id."""
    rows = []
    for reporter, entry in entries.items():
        whole = sum(e["requests"] for e in entry["endpoints"])
        for endpoint in entry["endpoints"]:
            if endpoint["instance"] == instance:
                rows.append({"proxy_id": reporter, "service": entry["service"],
                             **_endpoint_row(endpoint, whole, now),
                             "reported_at": iso(entry["at"])})
    rows.sort(key=lambda row: (row["service"], row["proxy_id"]))
    return rows


def upstream_rows(upstreams: Iterable[StoredUpstream], now: float) -> list[dict[str, Any]]:
    """What one sidecar reports of the services it calls: each instance's share of its
    requests to that service over its last interval."""
    rows = []
    for upstream in upstreams:
        whole = sum(e["requests"] for e in upstream["endpoints"])
        rows.append({
            "service": upstream["service"], "requests": whole, "overflow": upstream["overflow"],
            "endpoints": [{"instance": e["instance"], **_endpoint_row(e, whole, now)}
                          for e in upstream["endpoints"]],
        })
    return rows


def summary(own: Mapping[str, Any] | None, load: LoadJSON) -> dict[str, Any]:
    """An instance's own last report and its callers' merged view, for the registry's API."""
    return {
        "reported_at": iso(own["at"]) if own else None,
        "config_revision": own.get("config_revision") if own else None,
        "uptime_s": own.get("uptime_s") if own else None,
        "requests_total": own.get("requests_total") if own else None,
        **load, "ejected_until": iso(load["ejected_until"]),
    }
