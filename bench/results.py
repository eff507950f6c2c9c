"""Write one benchmark's section of bench/RESULTS.md, leaving the others as they are."""

from __future__ import annotations

import platform
import re
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nEach section is rewritten by its script; numbers are from the last run.\n"


def write_section(title: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section ``## title`` with ``body`` and a run stamp."""
    text = path.read_text() if path.exists() else HEADER
    stamp = (f"_Run {time.strftime('%Y-%m-%d %H:%M')} on {platform.node() or 'this machine'}, "
             f"Python {platform.python_version()}._")
    section = f"## {title}\n\n{stamp}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
