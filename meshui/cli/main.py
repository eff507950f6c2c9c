"""``meshctl``: the command line, and the exit codes (docs/cli.md).

``main(argv)`` parses, runs one command and returns its exit code; every failure is one
line on stderr, ``meshctl: <what to fix>``. ``run`` is the console script.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, NoReturn, TextIO

from meshui.cli import alert_parsers, identity_parsers, policy_commands, status_commands
from meshui.cli.arguments import Parser, bounded, command, output
from meshui.cli.client import ApiClient
from meshui.cli.config import loose_permissions, resolve
from meshui.cli.context import Context
from meshui.cli.errors import CliError, Exit, usage
from meshui.cli.login import login
from meshui.cli.terminal import clean

Command = Callable[[Context, argparse.Namespace], int]
DEFAULT_WAIT = 30.0
MAX_WINDOW = 3600  # collector.graphstore.MAX_WINDOW


def _writes(parser: argparse.ArgumentParser, message_help: str) -> None:
    parser.add_argument("-m", "--message", default="", help=message_help)
    parser.add_argument("--wait", action="store_true",
                        help="wait until every connected sidecar runs the new revision")
    parser.add_argument("--timeout", type=bounded(float, 0.1), default=DEFAULT_WAIT,
                        help=f"seconds --wait waits (default {DEFAULT_WAIT:g})")
    output(parser)


def parser() -> Parser:
    top = Parser(prog="meshctl", description="The command-line client of the meshui API "
                 "(docs/cli.md). meshui's URL and token: MESHUI_URL and MESHUI_TOKEN, or "
                 "the config file meshctl login writes (MESHCTL_CONFIG).")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")

    sub = command(commands, "login", login, "check an API token and save it with the URL")
    sub.add_argument("--url", help="meshui's URL (default: MESHUI_URL, the saved one, or "
                                   "http://127.0.0.1:8000)")
    sub.add_argument("--token", help="the API token (default: read from stdin or a prompt)")

    sub = command(commands, "get", policy_commands.get_policy, "print the current policy")
    sub.add_argument("what", choices=["policy"])
    output(sub, ("yaml", "json"))

    sub = command(commands, "apply", policy_commands.apply, "write a policy file as a new revision")
    sub.add_argument("-f", "--file", required=True, help="YAML or JSON policy; - for stdin")
    _writes(sub, "why (shown in history)")

    sub = command(commands, "split", policy_commands.split, "set a service's traffic split")
    sub.add_argument("service")
    sub.add_argument("weights", nargs="+", metavar="VERSION=PERCENT")
    _writes(sub, "why (default: the command)")

    sub = command(commands, "validate", policy_commands.validate,
                  "check a policy file without writing it, and show what would change")
    sub.add_argument("-f", "--file", required=True, help="YAML or JSON policy; - for stdin")
    output(sub)

    sub = command(commands, "diff", policy_commands.diff,
                  "what changed: the current revision, revision N, or from N to M")
    sub.add_argument("revisions", nargs="*", type=bounded(int, 0), metavar="N")
    output(sub)

    sub = command(commands, "history", policy_commands.history, "the revisions, newest first")
    sub.add_argument("--limit", type=bounded(int, 1, 1000), default=20,
                     help="how many (default 20)")
    output(sub)

    sub = command(commands, "rollback", policy_commands.rollback,
                  "write revision N's document again as a new revision")
    sub.add_argument("revision", type=bounded(int, 1), metavar="N")
    _writes(sub, "why (default: roll back to revision N)")

    sub = command(commands, "proxy-status", status_commands.proxy_status,
                  "every sidecar's sync state for the policy and the endpoints")
    output(sub)

    sub = command(commands, "stat", status_commands.stat_command,
                  "golden metrics per service, or one service's inbound and outbound calls")
    sub.add_argument("service", nargs="?")
    sub.add_argument("--window", type=bounded(int, 1, MAX_WINDOW), default=60,
                     help="seconds to add up, ending now (default 60)")
    output(sub)

    alert_parsers.add(commands)
    identity_parsers.add(commands)
    return top


def _run(args: argparse.Namespace, env: Mapping[str, str], stdin: IO[str], out: TextIO,
         err: TextIO) -> int:
    if args.handler is login:
        return login(args, env, stdin, out, err)
    target = resolve(env)
    if target.token and not env.get("MESHUI_TOKEN") and loose_permissions(target.config_path):
        print(f"meshctl: warning: {target.config_path} holds a token and others may read "
              f"it: chmod 600 {target.config_path}", file=err)
    colour = out.isatty() and "NO_COLOR" not in env
    with ApiClient(target) as client:
        context = Context(client=client, out=out, err=err, stdin=stdin,
                          json=args.output == "json", colour=colour)
        handler: Command = args.handler
        return handler(context, args)


def main(argv: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None,
         stdin: IO[str] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run one meshctl command; the exit code (errors.Exit)."""
    env = os.environ if env is None else env
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = parser().parse_args(argv)
        if args.command is None:
            raise usage("give a command, e.g. meshctl get policy (see meshctl --help)")
        return _run(args, env, stdin or sys.stdin, out, err)
    except CliError as exc:
        print(f"meshctl: {clean(exc.message)}", file=err)
        return exc.code
    except BrokenPipeError:  # `meshctl history | head -1`: the reader had enough
        # Point stdout at nothing so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK
    except KeyboardInterrupt:
        print("meshctl: interrupted", file=err)
        return 130
    except Exception as exc:  # the loop boundary: a line, not a traceback, unless asked
        if env.get("MESHCTL_DEBUG"):
            raise
        print(clean(f"meshctl: unexpected answer or failure ({type(exc).__name__}: {exc}); "
                    f"is MESHUI_URL a meshui of this version? MESHCTL_DEBUG=1 shows more"),
              file=err)
        return Exit.UNREACHABLE


def run() -> NoReturn:
    """The ``meshctl`` console script."""
    sys.exit(main())
