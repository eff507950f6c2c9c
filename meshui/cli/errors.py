"""Exit codes and the one error meshctl raises: a sentence saying what to fix."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """meshctl's exit codes (docs/cli.md, "Exit codes"): what a script may branch on."""

    OK = 0
    REFUSED = 1  # the server refused: invalid input, conflict, forbidden, not found
    USAGE = 2  # bad arguments, an unreadable file or config: fix the command line
    UNREACHABLE = 3  # no answer, a 5xx or a timeout: retrying later may help


class CliError(Exception):
    """Stops the command: ``meshctl: <message>`` on stderr, then exit with ``code``."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def usage(message: str) -> CliError:
    return CliError(message, Exit.USAGE)


def refused(message: str) -> CliError:
    return CliError(message, Exit.REFUSED)


def unreachable(message: str) -> CliError:
    return CliError(message, Exit.UNREACHABLE)
