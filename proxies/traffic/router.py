"""Which route a request takes and which version of the destination serves it (docs/policy.md).

One ``Router`` per destination service, built from its ``ServicePolicy``. Routes are tried in
order and the first whose match holds (path prefix, method, exact headers) decides the split
and the fault; when none holds, the service's own split applies under the route name
``default``. A split is smooth weighted round robin (nginx's ``ngx_http_upstream_get_peer``):
every pick adds each version's weight to its running score, takes the highest and subtracts
the total from it. The sequence is deterministic and evenly interleaved, so 90/10 sends exactly
one request in every 10 consecutive ones to the 10% version rather than only on average.

Pure apart from the split cursors: ``route`` takes the request's method, path and headers and
returns a ``RouteDecision`` built once at construction, so the hot path allocates nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from proxies.policy.schema import Fault, ServicePolicy

DEFAULT_ROUTE = "default"
# Weights are percentages validated to sum to 100 within 1e-6; scaled to integers (thousandths
# of a percent) the scores stay exact however many requests go by.
WEIGHT_SCALE = 1000

HeaderLookup = Mapping[bytes, bytes] | Callable[[bytes], bytes | None]


class RouteDecision:
    """Where one request goes: ``version`` None means any version of the service."""

    __slots__ = ("route_name", "version", "fault", "retriable")

    def __init__(self, route_name: str, version: str | None, fault: Fault | None, retriable: bool) -> None:
        self.route_name = route_name
        self.version = version
        self.fault = fault
        self.retriable = retriable  # False when the route injects faults (Istio does not retry those)

    def __repr__(self) -> str:
        return (
            f"RouteDecision(route_name={self.route_name!r}, version={self.version!r}, "
            f"fault={self.fault!r}, retriable={self.retriable!r})"
        )


class WeightedSplit:
    """Smooth weighted round robin over one route's versions."""

    __slots__ = ("decisions", "weights", "scores", "total")

    def __init__(
        self,
        split: tuple[tuple[str, float], ...],
        route_name: str,
        fault: Fault | None,
        retriable: bool,
    ) -> None:
        shares = [(version, round(weight * WEIGHT_SCALE)) for version, weight in split]
        shares = [(version, weight) for version, weight in shares if weight > 0]
        if not shares:  # no split: every version, balanced together
            self.decisions: tuple[RouteDecision, ...] = (RouteDecision(route_name, None, fault, retriable),)
            self.weights = [1]
        else:
            self.decisions = tuple(RouteDecision(route_name, v, fault, retriable) for v, _ in shares)
            self.weights = [weight for _, weight in shares]
        self.scores = [0] * len(self.weights)
        self.total = sum(self.weights)

    def pick(self) -> RouteDecision:
        weights = self.weights
        if len(weights) == 1:
            return self.decisions[0]
        scores = self.scores
        best = 0
        for i in range(len(weights)):
            scores[i] += weights[i]
            if scores[i] > scores[best]:
                best = i
        scores[best] -= self.total
        return self.decisions[best]


class Router:
    """Matches a request against a service's ordered routes and picks the version it goes to."""

    __slots__ = ("policy", "_rules", "_default")

    def __init__(self, policy: ServicePolicy) -> None:
        self.policy = policy
        rules = []
        for route in policy.routes:
            match = route.match
            split = route.split if route.split is not None else policy.split
            headers = tuple((n.encode("ascii"), v.encode("ascii")) for n, v in match.headers)
            picker = WeightedSplit(split, route.name, route.fault, route.fault is None)
            rules.append((match.path_prefix, match.method, headers, picker))
        self._rules: tuple[tuple[str | None, str | None, tuple[tuple[bytes, bytes], ...], WeightedSplit], ...]
        self._rules = tuple(rules)
        self._default = WeightedSplit(policy.split, DEFAULT_ROUTE, None, True)

    def route(self, method: str, path: str, headers: HeaderLookup) -> RouteDecision:
        """The first route whose match holds decides; then its split picks the version."""
        get: Callable[[bytes], bytes | None] | None = None
        for prefix, want_method, want_headers, picker in self._rules:
            if prefix is not None and not path.startswith(prefix):
                continue
            if want_method is not None and method != want_method:
                continue
            if want_headers:
                if get is None:
                    get = headers if callable(headers) else headers.get
                if not all(get(name) == value for name, value in want_headers):
                    continue
            return picker.pick()
        return self._default.pick()
