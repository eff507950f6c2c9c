"""Is a policy document good to push? The sidecar's own parser, then what the registry knows.

Errors come from ``proxies.policy.parser.parse_policy``, the very function every sidecar
runs on a ``config`` message (one validator, never re-implemented here), given the versions
the registry's live instances carry, as a sidecar is given its endpoints: a document this
rejects is one every sidecar would NACK. Warnings are ``istioctl analyze``'s kind: what is
allowed but probably not meant (a policy for a service nobody registered, a split naming
versions of a service that has no live instance to check them against).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshui.registry.frames import depth_exceeds
from proxies.policy.parser import parse_policy
from proxies.policy.schema import ANY_IDENTITY, UNAUTHENTICATED, PolicyError

# A policy document is a few KiB; the bound keeps a revision well inside the sidecars'
# control frame limit (1 MiB, proxies/mesh/schema.py) and the database row small.
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_DOCUMENT_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Problem:
    field: str  # the dotted path at fault: services.catalog.split.v3
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class RegistryView:
    """What validation needs of the registry: who registered, and their live versions."""

    services: frozenset[str] = frozenset()
    live_versions: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Validation:
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]

    @property
    def valid(self) -> bool:
        return not self.errors


def registry_view() -> RegistryView:
    """The registry as validation sees it (reads the database)."""
    from meshui.registry.models import Instance, Service

    live: dict[str, set[str]] = {}
    for service, version in Instance.objects.live().values_list("service__name", "version"):
        live.setdefault(service, set()).add(version)
    return RegistryView(
        services=frozenset(Service.objects.values_list("name", flat=True)),
        live_versions={name: frozenset(v for v in versions if v) for name, versions in live.items()},
    )


def size_problem(document: Any) -> Problem | None:
    """A document too large or too deep to store and push (checked before parsing)."""
    if depth_exceeds(document, MAX_DOCUMENT_DEPTH):
        return Problem("policy", f"nests deeper than {MAX_DOCUMENT_DEPTH} levels")
    size = len(json.dumps(document, separators=(",", ":")).encode())
    if size > MAX_DOCUMENT_BYTES:
        return Problem("policy", f"is {size} bytes of JSON; at most {MAX_DOCUMENT_BYTES}")
    return None


def validate(document: Any, registry: RegistryView) -> Validation:
    """Errors (any one makes the document unusable) and warnings, each naming its field."""
    problem = size_problem(document)
    if problem is not None:
        return Validation((problem,), ())
    if isinstance(document, Mapping) and "revision" in document:
        return Validation((Problem("revision", "is set by meshui (the revision's number); "
                                               "leave it out of the document"),), ())
    try:
        parse_policy(document, registry.live_versions)
    except PolicyError as exc:
        return Validation((Problem(exc.field, exc.message),), ())
    return Validation((), tuple(_warnings(document, registry)))


def _splits(where: str, service_doc: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    found = []
    if isinstance(service_doc.get("split"), Mapping):
        found.append((f"{where}.split", service_doc["split"]))
    for i, route in enumerate(service_doc.get("routes") or ()):
        if isinstance(route, Mapping) and isinstance(route.get("split"), Mapping):
            found.append((f"{where}.routes[{i}].split", route["split"]))
    return found


def _authorization_warnings(where: str, service_doc: Any, registry: RegistryView) -> list[Problem]:
    """Rules naming callers no sidecar ever joined as (a typo denies or allows nobody)."""
    authorization = service_doc.get("authorization") if isinstance(service_doc, Mapping) else None
    rules = authorization.get("rules") if isinstance(authorization, Mapping) else None
    warnings = []
    for i, rule in enumerate(rules or ()):
        for j, source in enumerate(rule.get("sources") or () if isinstance(rule, Mapping) else ()):
            if source not in (ANY_IDENTITY, UNAUTHENTICATED) and source not in registry.services:
                warnings.append(Problem(
                    f"{where}.authorization.rules[{i}].sources[{j}]",
                    f"no sidecar of a service named {source!r} has ever registered: this rule "
                    "matches no caller until one does"))
    return warnings


def _warnings(document: Mapping[str, Any], registry: RegistryView) -> list[Problem]:
    warnings = _authorization_warnings("default", document.get("default"), registry)
    for name, service_doc in sorted((document.get("services") or {}).items()):
        where = f"services.{name}"
        warnings += _authorization_warnings(where, service_doc, registry)
        if name not in registry.services:
            warnings.append(Problem(where, f"no sidecar of a service named {name!r} has ever "
                                           "registered; this policy waits until one does"))
            continue
        live = registry.live_versions.get(name)
        if live:
            continue  # the parser checked its versions against the live instances
        why = (f"{name} has no live instance, so the versions cannot be checked; sidecars "
               "accept them and route to whatever instances appear" if live is None else
               f"{name}'s live instances carry no version label, so requests this split "
               "sends to a version find no instance (503 no-healthy-upstream)")
        for at, split in _splits(where, service_doc or {}):
            if split:
                warnings.append(Problem(at, why))
    return warnings
