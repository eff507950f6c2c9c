"""The demo shop: which services exist, which versions run, and whom each one calls.

One table drives both the shop apps (what a request to a service does) and the runner
(which instances and sidecars to start), so the two can never disagree.

    unknown (load) -> frontend -> catalog v1|v2 -> inventory
                              -> reviews v1|v2 -> ratings   (v2 only, as in Istio's Bookinfo)
                              -> checkout      -> payments  (fails and stalls now and then)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    """A path a service answers, and the calls it makes downstream to answer it."""

    method: str
    path_prefix: str
    calls: tuple[tuple[str, str, str], ...]  # (service, method, path)


@dataclass(frozen=True, slots=True)
class Instance:
    service: str
    version: str
    failure_rate: float | None = None  # overrides the service's usual behaviour (tests, demos)


ROUTES: dict[str, tuple[Route, ...]] = {
    "frontend": (
        Route("GET", "/product", (("catalog", "GET", "/items/42"), ("reviews", "GET", "/reviews/42"))),
        Route("POST", "/checkout", (("catalog", "GET", "/items/42"), ("checkout", "POST", "/orders"))),
        Route("GET", "/", (("catalog", "GET", "/items"),)),
    ),
    "catalog": (Route("GET", "/items", (("inventory", "GET", "/stock"),)),),
    "inventory": (Route("GET", "/stock", ()),),
    "reviews": (Route("GET", "/reviews", ()),),
    "ratings": (Route("GET", "/ratings", ()),),
    "checkout": (Route("POST", "/orders", (("payments", "POST", "/charge"),)),),
    "payments": (Route("POST", "/charge", ()),),
}

# Version-specific behaviour: reviews v2 also asks ratings for stars.
VERSION_CALLS: dict[tuple[str, str], tuple[tuple[str, str, str], ...]] = {
    ("reviews", "v2"): (("ratings", "GET", "/ratings/42"),),
}

INSTANCES: tuple[Instance, ...] = (
    Instance("frontend", "v1"),
    Instance("catalog", "v1"),
    Instance("catalog", "v2"),
    Instance("inventory", "v1"),
    Instance("reviews", "v1"),
    Instance("reviews", "v2"),
    Instance("ratings", "v1"),
    Instance("checkout", "v1"),
    Instance("payments", "v1"),
)

# What the load generator asks the frontend for, with relative weights.
LOAD_MIX: tuple[tuple[str, str, int], ...] = (
    ("GET", "/product/42", 6),
    ("GET", "/", 3),
    ("POST", "/checkout", 1),
)


def route_for(service: str, version: str, method: str, path: str) -> tuple[tuple[str, str, str], ...] | None:
    """Downstream calls for a request, or None when the service has no such route."""
    for route in ROUTES.get(service, ()):
        if route.method == method and path.startswith(route.path_prefix):
            return route.calls + VERSION_CALLS.get((service, version), ())
    return None
