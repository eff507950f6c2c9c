"""The pieces every command's parser is built of: the parser class, number types, -o.

``main.parser`` builds the command line from them; the alert and notification commands'
parsers (``alert_parsers``) too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from meshui.cli.errors import usage


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line and exit 2 (not usage text and a traceback)."""

    def error(self, message: str) -> NoReturn:
        raise usage(f"{message} (see {self.prog} --help)")


def bounded(kind: type[int] | type[float], low: float, high: float | None = None
            ) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low or (high is not None and value > high) or value != value:
            upper = f" to {high:g}" if high is not None else " or more"
            raise argparse.ArgumentTypeError(f"{text!r} is out of range ({low:g}{upper})")
        return value

    return parse


def output(parser: argparse.ArgumentParser, choices: Sequence[str] = ("table", "json")) -> None:
    parser.add_argument("-o", "--output", choices=choices, default=choices[0],
                        help=f"{' or '.join(choices)} (default {choices[0]})")


def command(commands: Any, name: str, handler: object, text: str) -> argparse.ArgumentParser:
    """A subcommand ``name`` of ``commands`` (a subparsers action) that runs ``handler``."""
    sub: argparse.ArgumentParser = commands.add_parser(name, help=text, description=text)
    sub.set_defaults(handler=handler)
    return sub
