"""Every meshctl command, exit code and setting is in docs/cli.md (a public contract)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from meshui.cli.errors import Exit
from meshui.cli.main import parser

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


def command_lines() -> list[str]:
    """What each command is typed as: ``stat``, ``alert create``, and ``silence`` (which
    lists) besides ``silence create``."""
    found: list[str] = []

    def walk(command: argparse.ArgumentParser, words: str) -> None:
        subs = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found.append(words)
            return
        if words and not subs[0].required:
            found.append(words)
        for name, child in subs[0].choices.items():
            walk(child, f"{words} {name}".strip())

    walk(parser(), "")
    return found


def documented(title: str, known: set[str]) -> str | None:
    """The command a section's title (`` `meshctl alert create NAME ...` ``) documents."""
    quoted = re.match(r"`meshctl ([^`]*)`", title)
    if quoted is None:
        return None
    words = quoted.group(1).split()
    named = [" ".join(words[:count]) for count in range(len(words), 0, -1)]
    return next((line for line in named if line in known), None)


def test_every_command_has_its_section_with_an_example() -> None:
    lines = command_lines()
    assert {"proxy-status", "stat", "alerts", "alert create", "alert preview", "silence",
            "silence create", "contact-points", "contact-points test", "notifications"} <= set(
        lines)
    sections = re.split(r"^### ", DOCS, flags=re.M)[1:]
    by_command: dict[str, list[str]] = {}
    for section in sections:
        command = documented(section.splitlines()[0], set(lines))
        if command is not None:
            by_command.setdefault(command, []).append(section)
    for line in lines:
        if line == "login":
            assert "`meshctl login [--url URL] [--token TOKEN]`" in DOCS
            continue
        assert len(by_command.get(line, [])) == 1, line
        assert "```console" in by_command[line][0], line


def test_every_exit_code_and_setting_is_documented() -> None:
    for code in Exit:
        assert re.search(rf"^\| {code.value} \| ", DOCS, flags=re.M), code
    for name in ("MESHUI_URL", "MESHUI_TOKEN", "MESHCTL_CONFIG", "NO_COLOR", "MESHCTL_DEBUG"):
        assert f"| `{name}` |" in DOCS, name
