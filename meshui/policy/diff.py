"""What changed between two policy documents: field by field, and as a unified YAML diff.

Pure. The structured diff names each change by the dotted path the parser's errors use
(``services.catalog.split.v2``), so the UI can show "v2: 20 -> 50" next to the right
slider; lists are compared element by element (``routes[1].match``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

import yaml

Op = Literal["added", "removed", "changed"]


class Change(TypedDict):
    field: str
    op: Op
    old: Any
    new: Any


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def changes(old: Any, new: Any, where: str = "") -> list[Change]:
    """Every difference from ``old`` to ``new``, in document order (old keys first)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found: list[Change] = []
        for key in [*old, *(k for k in new if k not in old)]:
            at = _join(where, str(key))
            if key not in new:
                found.append({"field": at, "op": "removed", "old": old[key], "new": None})
            elif key not in old:
                found.append({"field": at, "op": "added", "old": None, "new": new[key]})
            else:
                found.extend(changes(old[key], new[key], at))
        return found
    if isinstance(old, list) and isinstance(new, list):
        found = []
        for i in range(max(len(old), len(new))):
            at = f"{where}[{i}]"
            if i >= len(new):
                found.append({"field": at, "op": "removed", "old": old[i], "new": None})
            elif i >= len(old):
                found.append({"field": at, "op": "added", "old": None, "new": new[i]})
            else:
                found.extend(changes(old[i], new[i], at))
        return found
    if old == new and type(old) is type(new):
        return []
    return [{"field": where or "policy", "op": "changed", "old": old, "new": new}]


def as_yaml(document: Any) -> str:
    """The document as the YAML a person edits (keys in their order, block style)."""
    if not document:
        return "{}\n"
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False,
                          allow_unicode=True)


def unified(old: Any, new: Any, old_label: str, new_label: str) -> str:
    """``diff -u`` of the two documents' YAML ('' when they are the same)."""
    lines = difflib.unified_diff(as_yaml(old).splitlines(keepends=True),
                                 as_yaml(new).splitlines(keepends=True),
                                 fromfile=old_label, tofile=new_label)
    return "".join(lines)


def report(old: Mapping[str, Any], new: Mapping[str, Any], old_label: str, new_label: str
           ) -> dict[str, Any]:
    """Both diffs of the API (``{"changes", "unified"}``: docs/api.md)."""
    return {"changes": changes(old, new), "unified": unified(old, new, old_label, new_label)}
