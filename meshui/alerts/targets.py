"""What a rule watches: a service, a version, an edge, an instance, or a pattern of them. Pure.

A target is a JSON object of one of these shapes (the API's ``target``):

    {"service": "payments"}                               what payments served
    {"service": "payments", "version": "v2"}              what its version v2 served
    {"source": "checkout", "target": "payments"}          the edge, as the caller saw it
    {"source": "checkout", "target": "payments", "version": "v2"}
                                                          the edge's calls v2 answered
    {"instance": "payments-v1-0"}                         what one instance served (its
    {"service": "payments", "instance": "payments-v1-0"}  service found from the data)

A name holding ``*`` is a **pattern**: ``*`` stands for any characters (none included), so
``{"source": "*", "target": "payments"}`` is every edge into payments and
``{"service": "pay*"}`` every service whose name starts with "pay". A pattern rule is
evaluated on each concrete target the live data holds that matches it, each with its own
state; names are otherwise matched exactly (a name cannot hold a literal ``*``).

Each shape reads the graph store's series of that scope (``collector.series.Scope``):
requests from ``n``/``nv``/``e``/``ev``/``i``, policy events from ``rn`` (the calls into a
service), ``r`` (the edge's) and ``ri`` (those the instance's own sidecar counted); a
version's series has no events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from collector.graphstore import SEP
from collector.series import Scope
from collector.validation import MAX_NAME_LENGTH

FIELDS = ("service", "version", "source", "target", "instance")
# Which fields each kind has, in the order its series names them.
SHAPES: dict[str, tuple[str, ...]] = {
    "service": ("service",),
    "version": ("service", "version"),
    "edge": ("source", "target"),
    "edge_version": ("source", "target", "version"),
    "instance": ("service", "instance"),
}
# The series kinds (``collector.graphstore`` field prefixes) of each target kind: where its
# requests are, where its events are (None: not recorded).
SERIES: dict[str, tuple[str, str | None]] = {
    "service": ("n", "rn"),
    "version": ("nv", None),
    "edge": ("e", "r"),
    "edge_version": ("ev", None),
    "instance": ("i", "ri"),
}
WILDCARD = "*"


class TargetProblem(ValueError):
    """A target that is not one of the shapes; ``field`` names the part at fault."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


def name_problem(value: Any) -> str | None:
    """What is wrong with a name (as the collector stores them: 1..255 printable)."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters"
    if not value.isprintable():
        return "must not hold control or non-printable characters"
    return None


@lru_cache(maxsize=4096)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in text.split(WILDCARD)), re.S)


def name_matches(wanted: str | None, name: str) -> bool:
    """Whether a target's name (maybe a pattern, None: any) matches a name in the data."""
    if wanted is None or wanted == WILDCARD:
        return True
    if WILDCARD not in wanted:
        return wanted == name
    return _pattern(wanted).fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class Target:
    """One target, maybe a pattern; build it with ``parse`` (which checks it)."""

    kind: str
    service: str | None = None
    version: str | None = None
    source: str | None = None
    target: str | None = None
    instance: str | None = None
    # Worked out once: a cycle asks for them for every target of every rule.
    names: tuple[str | None, ...] = field(init=False, repr=False, compare=False)
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(getattr(self, name) for name in SHAPES[self.kind]))
        # The target's identity among a rule's states: its JSON, keys sorted.
        object.__setattr__(self, "key", json.dumps(self.as_json(), sort_keys=True,
                                                   separators=(",", ":")))

    @property
    def is_pattern(self) -> bool:
        return any(name is not None and WILDCARD in name for name in self.names)

    @property
    def has_events(self) -> bool:
        return SERIES[self.kind][1] is not None

    def as_json(self) -> dict[str, str]:
        return {name: value for name in FIELDS if (value := getattr(self, name)) is not None}

    def label(self) -> str:
        """How a sentence names it: ``checkout -> payments``, ``payments v2``."""
        if self.kind in ("edge", "edge_version"):
            edge = f"{self.source} -> {self.target}"
            return f"{edge} ({self.version})" if self.version else edge
        if self.kind == "instance":
            return f"instance {self.instance}" + (f" of {self.service}" if self.service else "")
        return f"{self.service} {self.version}" if self.version else str(self.service)

    def scope(self) -> Scope | None:
        """The series of a concrete target (None: an instance whose service is not known)."""
        if self.kind == "instance" and self.service is None:
            return None
        requests, events = SERIES[self.kind]
        parts = "".join(f"{name}{SEP}" for name in self.names)
        return Scope(f"{requests}{SEP}{parts}", f"{events}{SEP}{parts}" if events else None)

    def matches(self, parts: tuple[str, ...]) -> bool:
        """Whether a series' names (in the kind's order) are one of this target's."""
        return all(name_matches(wanted, have) for wanted, have in zip(self.names, parts,
                                                                       strict=True))

    def concrete(self, parts: tuple[str, ...]) -> Target:
        """The concrete target of a series this one matches."""
        return Target(self.kind, **dict(zip(SHAPES[self.kind], parts, strict=True)))


def kind_of(given: frozenset[str]) -> str | None:
    for kind, fields in SHAPES.items():
        if given == frozenset(fields):
            return kind
    if given == frozenset({"instance"}):
        return "instance"
    return None


SHAPES_TEXT = ("give service (and version), source and target (and version), or instance "
               "(and service)")


def parse(raw: Any) -> Target:
    """A target from its JSON, checked; TargetProblem names the part at fault."""
    if not isinstance(raw, Mapping):
        raise TargetProblem("target", f"target must be an object: {SHAPES_TEXT}")
    unknown = sorted(str(key) for key in raw if key not in FIELDS)
    if unknown:
        raise TargetProblem(f"target.{unknown[0][:40]}",
                            f"target.{unknown[0][:40]} is not a target field: {SHAPES_TEXT}")
    given = {key: value for key, value in raw.items() if value is not None}
    for key, value in given.items():
        problem = name_problem(value)
        if problem is not None:
            raise TargetProblem(f"target.{key}", f"target.{key} {problem}")
    kind = kind_of(frozenset(given))
    if kind is None:
        raise TargetProblem("target", f"target {sorted(given)} is not a target: {SHAPES_TEXT}")
    return Target(kind, **given)


class SeriesIndex:
    """Which concrete targets the live data holds: the series names of a window, by kind.

    Built from the series prefixes of the graph store's fields (``e␟src␟dst␟``, ...); what
    a pattern expands to, and which service an instance belongs to.
    """

    def __init__(self, prefixes: Iterable[str]) -> None:
        self._by_kind: dict[str, set[tuple[str, ...]]] = {}
        for prefix in prefixes:
            kind, *parts = prefix.split(SEP)[:-1]
            self._by_kind.setdefault(kind, set()).add(tuple(parts))
        self._sorted: dict[str, list[tuple[str, ...]]] = {}

    def _series(self, target_kind: str) -> list[tuple[str, ...]]:
        found = self._sorted.get(target_kind)
        if found is None:
            requests, events = SERIES[target_kind]
            width = len(SHAPES[target_kind])
            names = {parts for kind in (requests, events) if kind
                     for parts in self._by_kind.get(kind, ()) if len(parts) == width}
            found = self._sorted[target_kind] = sorted(names)
        return found

    def expand(self, target: Target) -> list[Target]:
        """The concrete targets of the data that ``target`` (a pattern) matches, by name."""
        return [target.concrete(parts) for parts in self._series(target.kind)
                if target.matches(parts)]

    def instance_service(self, instance: str) -> str | None:
        """The service an instance served for (the first by name if several)."""
        for service, name in self._series("instance"):
            if name == instance:
                return service
        return None
