"""What meshctl writes to a terminal: cleaned text, aligned tables, a coloured diff, JSON.

Everything here is pure. Anything that came from the API (service names, versions, NACK
reasons, commit messages) passes through ``clean`` before it is printed, so a hostile name
cannot move the cursor, retitle the window or hide text behind a carriage return.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

# Bidirectional overrides and isolates reorder what follows them on screen ("Trojan
# Source", CVE-2021-42574): shown escaped like the control characters.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _unsafe(char: str, keep: str) -> bool:
    return char not in keep and (unicodedata.category(char) == "Cc" or char in _BIDI)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: object, keep: str = "") -> str:
    """``value`` as text with control characters (C0, DEL, C1) and bidi controls escaped.

    ``keep`` lists characters to let through (``"\\n"`` for a multi-line diff).
    """
    text = str(value)
    if not any(_unsafe(c, keep) for c in text):
        return text
    return "".join(_escape(c) if _unsafe(c, keep) else c for c in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell (``istioctl``'s and ``linkerd``'s layout)."""
    cells = [[clean(cell) for cell in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)
                                ).rstrip() for line in lines) + "\n"


_COLOURS = {"+": "\x1b[32m", "-": "\x1b[31m", "@": "\x1b[36m"}
_RESET = "\x1b[0m"


def diff_text(unified: str, colour: bool) -> str:
    """A unified diff, cleaned; added lines green, removed red, hunks cyan when ``colour``."""
    text = clean(unified, keep="\n")
    if not colour:
        return text
    lines = []
    for line in text.splitlines():
        start = _COLOURS.get(line[:1]) if not line.startswith(("+++", "---")) else "\x1b[1m"
        lines.append(f"{start}{line}{_RESET}" if start else line)
    return "\n".join(lines) + "\n"


def age(created_at: str | None, now: datetime) -> str:
    """``42s``, ``5m``, ``3h``, ``12d`` since an API timestamp (``-`` when there is none)."""
    if not created_at:
        return "-"
    try:
        then = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_time(value: str | None) -> datetime | None:
    """An API timestamp (ISO 8601, ``Z`` or an offset); None when missing or not one."""
    if not value:
        return None
    try:
        then = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return then if then.tzinfo else then.replace(tzinfo=UTC)


_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def span(seconds: float) -> str:
    """A duration in its largest unit and the next: ``45s``, ``5m``, ``1h30m``, ``2d3h``."""
    left = max(0, int(seconds))
    for (unit, size), (smaller, small_size) in zip(_UNITS, _UNITS[1:], strict=False):
        if left >= size:
            rest = left % size // small_size
            return f"{left // size}{unit}" + (f"{rest}{smaller}" if rest else "")
    return f"{left}s"


def relative(value: str | None, now: datetime) -> str:
    """``5m ago`` or ``in 2h`` from an API timestamp (``-`` when there is none)."""
    if not value:
        return "-"
    then = parse_time(value)
    if then is None:
        return "?"
    seconds = (then - now).total_seconds()
    return f"in {span(seconds)}" if seconds >= 1 else f"{span(-seconds)} ago"


def first_line(text: str, width: int = 60) -> str:
    """The first line of a message, cut to ``width`` characters with an ellipsis."""
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= width else line[: width - 1] + "…"


# C1 controls and DEL are legal raw in JSON strings; written as \u escapes they cannot
# reach the terminal (json.dumps already escapes C0).
_RAW_CONTROLS = re.compile("[\x7f-\x9f\u2028\u2029" + "".join(sorted(_BIDI)) + "]")


def as_json(value: Any) -> str:
    """Indented JSON for scripts, every control character escaped, non-ASCII kept."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return _RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def as_yaml(document: Any) -> str:
    """YAML a person edits and applies again; non-ASCII and controls written as escapes."""
    if not document:
        return "{}\n"
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False,
                          allow_unicode=False)
