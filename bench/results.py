"""Write one benchmark's section of bench/RESULTS.md, leaving the others as they are."""

from __future__ import annotations

import platform
import re
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nEach section is rewritten by its own script, from its last run.\n"


def write_section(section: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section that ``section`` opens with (``## Title``)."""
    heading, _, body = section.strip().partition("\n")
    if not heading.startswith("## "):
        raise ValueError(f"a section starts with '## Title', not {heading!r}")
    stamp = f"_Last run {time.strftime('%Y-%m-%d %H:%M')}, Python {platform.python_version()}._"
    new = f"{heading}\n\n{stamp}\n\n{body.strip()}\n"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: new + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + new
    path.write_text(text.rstrip("\n") + "\n")
    print(f"wrote {heading[3:]} to {path}")


def report(lines: list[str], write: bool) -> None:
    """Print a benchmark's section and, unless told not to, write it to RESULTS.md."""
    section = "\n".join(lines)
    print("\n" + section)
    if write:
        write_section(section)


def spread(values: list[float]) -> float:
    """Half the range of one target's rounds, relative to their median: the noise."""
    return (max(values) - min(values)) / 2 / statistics.median(values) if values else 0.0


def paired_ratios(head: list[float], base: list[float]) -> list[float]:
    """head/base within each round: drift between rounds cancels out of each ratio."""
    return [h / b for h, b in zip(head, base, strict=True) if b > 0]
