"""The policy in force for one service, and what kinds of policy each service carries.

Pure. Both read a stored document through the sidecar's own parser
(``proxies.policy.parser``), so "in force" means what a sidecar computes: the service's
object merged over ``default``, merged over the schema's defaults. Versions are not checked
here (a stored revision passed that check when it was written; instances come and go since).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from proxies.policy.parser import parse_policy, policy_as_dict
from proxies.policy.schema import (
    CircuitBreaker,
    OutlierDetection,
    Policy,
    PolicyError,
    ServicePolicy,
)

#: What the graph marks a service with, in this order, and the words it uses.
MARK_LABELS: dict[str, str] = {
    "split": "split",
    "breaker": "breaker",
    "fault": "fault active",
    "rate_limit": "rate limit",
}


class PolicyMarks(TypedDict):
    revision: int
    default: list[str]  # what every service not named in ``services`` carries
    services: dict[str, list[str]]


def parsed(document: Mapping[str, Any]) -> Policy:
    """The stored document as sidecars read it; the defaults if it no longer parses."""
    try:
        return parse_policy(document)
    except PolicyError:
        return Policy()


def in_force(document: Mapping[str, Any], service: str) -> dict[str, Any]:
    """Every field of ``service``'s policy as sidecars apply it, defaults filled in."""
    policy = parsed(document)
    plain = policy_as_dict(Policy(default=policy.for_service(service)))
    return plain["default"]


def marks_of(policy: ServicePolicy) -> list[str]:
    """The kinds of policy that change what a service's callers get (MARK_LABELS' keys)."""
    marks = []
    if policy.split:
        marks.append("split")
    if (policy.circuit_breaker != CircuitBreaker()
            or policy.outlier_detection != OutlierDetection()):
        marks.append("breaker")
    if any(route.fault is not None for route in policy.routes):
        marks.append("fault")
    if policy.rate_limit.total is not None or policy.rate_limit.per_source is not None:
        marks.append("rate_limit")
    return marks


def policy_marks(revision: int, document: Mapping[str, Any]) -> PolicyMarks:
    policy = parsed(document)
    return {"revision": revision, "default": marks_of(policy.default),
            "services": {name: marks_of(p) for name, p in sorted(policy.services.items())}}
