"""Silence matchers, Alertmanager's: ``name op value`` with ``=``, ``!=``, ``=~``, ``!~``.

A regular expression matches the whole value (Alertmanager anchors it); a label the alert
does not have has the value "", so ``team=""`` matches alerts without a team. A silence
mutes an alert when every one of its matchers matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

OPS = ("=", "!=", "=~", "!~")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
VALUE_MAX = 256
MATCHERS_MAX = 20


class MatcherProblem(ValueError):
    def __init__(self, index: int, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = f"matchers[{index}].{field}" if field else f"matchers[{index}]"


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        have = labels.get(self.name, "")
        if self.pattern is not None:
            return (self.pattern.fullmatch(have) is not None) == (self.op == "=~")
        return (have == self.value) == (self.op == "=")

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value!r}"


def parse(raw: Iterable[Any]) -> list[Matcher]:
    """Matchers from their JSON, each checked; ``MatcherProblem`` names the one at fault."""
    found: list[Matcher] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise MatcherProblem(index, "", "a matcher is {\"name\", \"op\", \"value\"}")
        name, op, value = item.get("name"), item.get("op", "="), item.get("value")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise MatcherProblem(index, "name", "a label name is [A-Za-z_][A-Za-z0-9_]*, "
                                                "at most 64 characters")
        if op not in OPS:
            raise MatcherProblem(index, "op", f"op is one of {', '.join(OPS)}")
        if not isinstance(value, str) or len(value) > VALUE_MAX or not value.isprintable():
            raise MatcherProblem(index, "value", f"a value is printable text of at most "
                                                 f"{VALUE_MAX} characters")
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise MatcherProblem(index, "value", f"not a regular expression: {exc}") from None
        found.append(Matcher(name, op, value, pattern))
    if not found:
        raise MatcherProblem(0, "", "a silence needs at least one matcher")
    if len(found) > MATCHERS_MAX:
        raise MatcherProblem(MATCHERS_MAX, "", f"at most {MATCHERS_MAX} matchers")
    if all(m.matches({}) for m in found):
        # Alertmanager refuses these too: they would silence every alert.
        raise MatcherProblem(0, "", "these matchers match an alert with no labels, so they "
                                    "would silence every alert; match a label's value")
    return found


def all_match(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
