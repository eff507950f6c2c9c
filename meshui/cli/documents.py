"""What meshctl reads from the user: a policy or rule file (YAML or JSON) and split weights.

Pure but for reading the file. Anything wrong here is a usage error (exit 2) found before
any request: a missing file, a document that is not YAML, a weight that is not a number.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import yaml

from meshui.cli.errors import usage

MAX_DOCUMENT_BYTES = 1024 * 1024  # a policy of a few hundred services is well under this
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
# What `meshctl get policy -o json` prints: a revision, the document inside it.
_REVISION_KEYS = frozenset({"revision", "document", "author", "message", "source", "created_at",
                            "parent"})


class _DocumentLoader(yaml.SafeLoader):
    """SafeLoader without dates (JSON has none: `2026-01-01` stays a string) or aliases.

    An alias is refused because a few of them nest into an exponentially large document
    once it is sent as JSON ("billion laughs").
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed (JSON has none); write the value out",
                self.peek_event().start_mark)
        return super().compose_node(parent, index)


_DocumentLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _read(name: str, stdin: IO[str] | None, what: str = "policy") -> str:
    if name == "-":
        text = (stdin or sys.stdin).read(MAX_DOCUMENT_BYTES + 1)
    else:
        try:
            with Path(name).open("r", encoding="utf-8") as file:
                text = file.read(MAX_DOCUMENT_BYTES + 1)
        except FileNotFoundError:
            raise usage(f"{name}: no such file; give the {what} file with -f FILE "
                        f"(or -f - for stdin)") from None
        except IsADirectoryError:
            raise usage(f"{name} is a directory; give a {what} file with -f FILE") from None
        except UnicodeDecodeError:
            raise usage(f"{name} is not UTF-8 text; give a YAML or JSON {what} file") from None
        except OSError as exc:
            raise usage(f"cannot read {name}: {exc.strerror}") from None
    if len(text) > MAX_DOCUMENT_BYTES:
        raise usage(f"{name} is over {MAX_DOCUMENT_BYTES // 1024} KiB; a {what} is smaller")
    return text


def _load(text: str, name: str) -> Any:
    """What ``text`` holds (YAML, or JSON, which is YAML too); None for an empty file."""
    try:
        return yaml.load(text, Loader=_DocumentLoader)  # noqa: S506  (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise usage(f"{name} is not valid YAML or JSON{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise usage(f"{name} is not valid YAML or JSON: {exc}") from None


def _json_safe(loaded: dict[str, Any], name: str) -> dict[str, Any]:
    try:
        json.dumps(loaded, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise usage(f"{name} holds a value JSON cannot carry ({exc}); quote it") from None
    return loaded


def parse_document(text: str, name: str) -> dict[str, Any]:
    """The policy document in ``text`` (YAML, or JSON, which is YAML too)."""
    loaded = _load(text, name)
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise usage(f"{name} must hold a policy document (a mapping with default and "
                    f"services), not a {type(loaded).__name__}")
    if _is_revision(loaded):
        loaded = loaded["document"]
    return _json_safe(loaded, name)


def read_object(name: str, what: str, stdin: IO[str] | None = None) -> dict[str, Any]:
    """The one mapping in file ``name`` (``-``: standard input): an API body, e.g. a rule.

    ``what`` names it in the errors ("alert rule", "contact point").
    """
    shown = "stdin" if name == "-" else name
    loaded = _load(_read(name, stdin, what), shown)
    if not isinstance(loaded, dict):
        kind = "nothing" if loaded is None else f"a {type(loaded).__name__}"
        raise usage(f"{shown} must hold one {what} (a mapping of its fields), not {kind}")
    return _json_safe(loaded, shown)


def _is_revision(loaded: dict[str, Any]) -> bool:
    """An exported revision (``get policy -o json``) rather than a bare document."""
    return ("document" in loaded and isinstance(loaded["document"], dict)
            and "revision" in loaded and set(loaded) <= _REVISION_KEYS)


def read_document(name: str, stdin: IO[str] | None = None) -> dict[str, Any]:
    """The policy document in file ``name`` (``-``: standard input)."""
    return parse_document(_read(name, stdin), "stdin" if name == "-" else name)


_INTEGER = re.compile(r"[+-]?\d+")


def parse_weight(text: str) -> int | float:
    if _INTEGER.fullmatch(text):
        return int(text)
    value = float(text)  # ValueError for anything that is not a number
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def parse_split(items: Sequence[str]) -> dict[str, int | float]:
    """``["v1=80", "v2=20"]`` -> ``{"v1": 80, "v2": 20}``; the server checks the sum."""
    split: dict[str, int | float] = {}
    for item in items:
        version, sep, weight = item.partition("=")
        version = version.strip()
        if not sep or not version:
            raise usage(f"{item!r}: give each weight as VERSION=PERCENT, e.g. v1=80 v2=20")
        if version in split:
            raise usage(f"{version} is given twice; give each version once")
        try:
            split[version] = parse_weight(weight.strip())
        except ValueError:
            raise usage(f"{item!r}: the weight of {version} must be a number, e.g. "
                        f"{version}=80") from None
    return split
