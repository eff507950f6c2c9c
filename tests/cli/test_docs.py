"""Every meshctl command, exit code and setting is in docs/cli.md (a public contract)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from meshui.cli.errors import Exit
from meshui.cli.main import parser

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


def commands() -> list[str]:
    (sub,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return list(sub.choices)


def test_every_command_has_its_section_with_an_example() -> None:
    assert "proxy-status" in commands() and "stat" in commands()
    sections = re.split(r"^### ", DOCS, flags=re.M)
    for name in commands():
        if name == "login":
            assert "`meshctl login [--url URL] [--token TOKEN]`" in DOCS
            continue
        (section,) = [s for s in sections if s.startswith(f"`meshctl {name} ")]
        assert "```console" in section, name


def test_every_exit_code_and_setting_is_documented() -> None:
    for code in Exit:
        assert re.search(rf"^\| {code.value} \| ", DOCS, flags=re.M), code
    for name in ("MESHUI_URL", "MESHUI_TOKEN", "MESHCTL_CONFIG", "NO_COLOR", "MESHCTL_DEBUG"):
        assert f"| `{name}` |" in DOCS, name
