"""A policy document written as YAML text (the YAML editor, ``meshctl apply -f``): parse it
safely, and find the line a dotted field names so an error can point at it.

Pure. The text is untrusted: it is bounded in bytes before parsing, and refused when it
uses anchors or aliases (``&a`` / ``*a``: a few lines of aliases expand into gigabytes, the
"billion laughs") or nests deeper than a policy document may; both are checked on the
parser's event stream, before any object is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from meshui.policy.validation import MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH

_STARTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
# services.catalog.routes[0].split.v3 -> "services", "catalog", "routes", 0, "split", "v3"
_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


@dataclass(frozen=True, slots=True)
class YamlProblem(Exception):
    """The text is not a YAML document meshui takes; ``line`` is 1-based (None: unknown)."""

    detail: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return where + self.detail


def _mark_line(mark: Any) -> tuple[int | None, int | None]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (None, None)


def _screen(text: str) -> None:
    """Refuse aliases and deep nesting while only events exist (nothing is built yet)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            line, column = _mark_line(event.start_mark)
            raise YamlProblem("anchors and aliases (&name, *name) are not accepted in a "
                              "policy document; write the values out", line, column)
        if isinstance(event, _STARTS):
            depth += 1
            if depth > MAX_DOCUMENT_DEPTH:
                line, column = _mark_line(event.start_mark)
                raise YamlProblem(f"nests deeper than {MAX_DOCUMENT_DEPTH} levels", line, column)
        elif isinstance(event, _ENDS):
            depth -= 1


def load(text: str) -> dict[str, Any]:
    """The document ``text`` holds (empty text: ``{}``, every default); YamlProblem if none."""
    size = len(text.encode())
    if size > MAX_DOCUMENT_BYTES:
        raise YamlProblem(f"is {size} bytes; a policy document is at most {MAX_DOCUMENT_BYTES}")
    try:
        _screen(text)
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line, column = _mark_line(exc.problem_mark)
        raise YamlProblem(f"not valid YAML: {exc.problem or exc}", line, column) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"not valid YAML: {exc}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise YamlProblem(f"the document must be a mapping (revision, default, services), "
                          f"got a {type(document).__name__}", 1, 1)
    return document


def _tokens(field: str) -> list[str | int]:
    return [int(index) if index else name for index, name in _TOKEN.findall(field)]


def _child(node: Any, rest: list[str | int]) -> tuple[Any, int, int] | None:
    """The child of ``node`` the first tokens of ``rest`` name, the 1-based line that names
    it (its key's, or a list item's own), and how many tokens it took.

    A mapping key may hold dots (a version ``v1.2``), so the longest run of tokens that
    names a key wins.
    """
    if isinstance(node, yaml.SequenceNode) and isinstance(rest[0], int):
        if rest[0] >= len(node.value):
            return None
        item = node.value[rest[0]]
        return item, item.start_mark.line + 1, 1
    if isinstance(node, yaml.MappingNode):
        keys = {str(key.value): (key, value) for key, value in node.value}
        for taken in range(len(rest), 0, -1):
            if any(isinstance(t, int) for t in rest[:taken]):
                continue
            name = ".".join(str(t) for t in rest[:taken])
            if name in keys:
                key, value = keys[name]
                return value, key.start_mark.line + 1, taken
    return None


def line_of(text: str, field: str) -> int | None:
    """The 1-based line of ``field`` (a dotted path) in ``text``, or of its nearest ancestor
    that is written there (a required key that is missing points at its parent)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    if node is None:
        return None
    rest = _tokens(field)
    line = node.start_mark.line + 1
    while rest:
        found = _child(node, rest)
        if found is None:
            break
        node, line, taken = found
        rest = rest[taken:]
    return line
