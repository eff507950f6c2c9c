"""What every command gets: the API client, where to write, and how to format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TextIO

from meshui.cli.client import ApiClient


@dataclass(frozen=True, slots=True)
class Context:
    client: ApiClient
    out: TextIO
    err: TextIO
    stdin: IO[str]
    json: bool  # -o json: the API's JSON for scripts instead of text for people
    colour: bool  # stdout is a terminal (and NO_COLOR is unset)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def say(self, text: str) -> None:
        """A line for people: stdout, or stderr when stdout carries JSON."""
        print(text, file=self.err if self.json else self.out, flush=True)

    def warn(self, text: str) -> None:
        print(f"meshctl: warning: {text}", file=self.err, flush=True)
