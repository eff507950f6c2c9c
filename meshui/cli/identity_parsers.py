"""The command line of the identity commands: ``token create|list|revoke`` and ``certs``
(docs/cli.md, "Identity"). ``main.parser`` adds them with ``add``."""

from __future__ import annotations

from typing import Any

from meshui.cli import identity_commands
from meshui.cli.alert_input import parse_duration
from meshui.cli.arguments import command, output


def add(commands: Any) -> None:
    token = commands.add_parser("token", help="join tokens, how sidecars join the mesh: "
                                "create, list, revoke (admin)",
                                description="Join tokens (docs/security.md, \"Joining\"): "
                                "each lets a sidecar join as one service. Admin only.")
    actions = token.add_subparsers(dest="action", metavar="ACTION", required=True)

    sub = command(actions, "create", identity_commands.create_token,
                  "a new join token for one service, printed this once")
    sub.add_argument("--service", required=True, help="the only service a sidecar may join "
                                                      "as with it")
    sub.add_argument("--expires-in", type=parse_duration, metavar="DURATION",
                     help="how long it lasts: 30d, 12h, or seconds (60s..365d; default "
                          "MESHUI_JOIN_TOKEN_TTL_S, 30 days)")
    sub.add_argument("--description", default="", help="what it is for (at most 200 "
                                                       "characters; shown in the list)")
    sub.add_argument("-q", "--quiet", action="store_true",
                     help="print only the token (for scripts)")
    output(sub)

    sub = command(actions, "list", identity_commands.list_tokens,
                  "the join tokens that can still join, newest first")
    sub.add_argument("--service", help="only this service's")
    sub.add_argument("--all", action="store_true", help="also the revoked and expired ones")
    output(sub)

    sub = command(actions, "revoke", identity_commands.revoke_token,
                  "revoke a join token: its sidecars are disconnected now")
    sub.add_argument("token", metavar="ID", help="its id (or its prefix, mjt_...)")
    output(sub)

    sub = command(commands, "certs", identity_commands.certs,
                  "each sidecar's certificate (identity, serial, expiry, rotation) and the CA")
    sub.add_argument("--service", help="only this service's sidecars")
    sub.add_argument("--expiring", type=parse_duration, metavar="WITHIN",
                     help="only certificates that expire within this (2h, 1d; expired ones "
                          "too)")
    output(sub)
