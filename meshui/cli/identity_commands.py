"""The identity commands: ``token create|list|revoke`` (join tokens, admin only) and
``certs`` (each sidecar's certificate and the CA), each one or two requests to the endpoints
of docs/api.md, "Identity".

A join token is printed once, when it is made (``--quiet``: the token alone, for scripts);
the API keeps only its hash. Every join token endpoint needs the admin role, even to list:
a 403 says so in those words rather than the server's.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from meshui.cli import identity_text
from meshui.cli.client import ApiRefusal
from meshui.cli.context import Context
from meshui.cli.errors import Exit, refused, usage
from meshui.cli.terminal import as_json, clean, span, table

TOKENS = "/join-tokens"
DAY = 86400
EXPIRES_MIN_S, EXPIRES_MAX_S = 60, 365 * DAY  # meshui.identity.schemas' bounds
# What a refusal's ``parameter`` is on the command line.
_FLAGS = {"service": "--service", "body.service": "--service",
          "body.description": "--description", "body.expires_in_s": "--expires-in"}
ADMIN_ONLY = ("join tokens need the admin role: ask an admin, or log in with an admin's API "
              "token (meshctl login)")


def _tokens(ctx: Context, method: str, path: str, **kwargs: Any) -> Any:
    """A join token request; a 403 and a refused field said the command line's way."""
    try:
        return ctx.client.request(method, path, **kwargs)
    except ApiRefusal as refusal:
        if refusal.status == 403:
            raise refused(ADMIN_ONLY) from None
        if refusal.error == "invalid_parameter" and refusal.parameter in _FLAGS:
            raise refused(f"{_FLAGS[refusal.parameter]}: {refusal.reason()}; no token was "
                          f"made") from None
        raise


def create_token(ctx: Context, args: argparse.Namespace) -> int:
    if args.quiet and ctx.json:
        raise usage("--quiet prints the token alone and -o json the whole record: give one")
    body: dict[str, Any] = {"service": args.service, "description": args.description}
    if args.expires_in is not None:
        if not EXPIRES_MIN_S <= args.expires_in <= EXPIRES_MAX_S:
            raise usage(f"--expires-in {span(args.expires_in)}: a join token lasts from "
                        f"{span(EXPIRES_MIN_S)} to {span(EXPIRES_MAX_S)}")
        body["expires_in_s"] = args.expires_in
    created = _tokens(ctx, "POST", TOKENS, json=body)
    if ctx.json:
        ctx.out.write(as_json(created))
    elif args.quiet:
        ctx.out.write(clean(created.get("token", "")) + "\n")
    else:
        for line in identity_text.created_lines(created, ctx.now()):
            ctx.out.write(clean(line) + "\n")
    return Exit.OK


def _listed(ctx: Context) -> list[dict[str, Any]]:
    return list(_tokens(ctx, "GET", TOKENS).get("join_tokens") or [])


def list_tokens(ctx: Context, args: argparse.Namespace) -> int:
    listed = _listed(ctx)
    if args.service:
        listed = [t for t in listed if t.get("service") == args.service]
    if ctx.json:
        ctx.out.write(as_json({"join_tokens": listed}))
        return Exit.OK
    # As silences: what can no longer join is left out unless asked for.
    shown = listed if args.all else [t for t in listed if t.get("state") == identity_text.ACTIVE]
    if shown:
        ctx.out.write(table(identity_text.TOKEN_HEADERS,
                            identity_text.token_rows(shown, ctx.now())))
    elif listed:
        ctx.out.write(f"no active join token{clean(' for ' + args.service) if args.service else ''}"
                      "\n")
    else:
        which = f" for {clean(args.service)}" if args.service else " yet"
        ctx.out.write(f"no join token{which}: meshctl token create --service "
                      f"{clean(args.service) if args.service else 'NAME'} makes one\n")
    if len(listed) > len(shown):
        ctx.out.write(identity_text.hidden_line(len(listed) - len(shown)) + "\n")
    return Exit.OK


def _find(listed: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    """The token ``ref`` names: its id, or its prefix as the list shows it (``mjt_a1b2…``)."""
    text = ref.strip().rstrip("…").removesuffix("...")
    for token in listed:
        if str(token.get("id")) == text or (len(text) >= 8 and
                                            str(token.get("prefix", "")).startswith(text)):
            return token
    raise refused(clean(f"there is no join token {ref.strip()!r} (meshctl token list --all "
                        f"lists them, with their ids)"))


def revoke_token(ctx: Context, args: argparse.Namespace) -> int:
    token = _find(_listed(ctx), args.token)
    already = token.get("state") == "revoked"
    if not already:
        token = _tokens(ctx, "DELETE", f"{TOKENS}/{token['id']}")
    if ctx.json:
        ctx.out.write(as_json(token))
    else:
        ctx.say(clean(identity_text.revoked_line(token, ctx.now(), already)))
    return Exit.OK


def _chosen(certificates: list[Mapping[str, Any]], args: argparse.Namespace,
            ctx: Context) -> list[Mapping[str, Any]]:
    if args.service:
        certificates = [c for c in certificates if c.get("service") == args.service]
    if args.expiring is not None:
        certificates = identity_text.expiring_within(certificates, args.expiring, ctx.now())
    return certificates


def certs(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.client.get("/certificates")
    listed = _chosen(list(answer.get("certificates") or []), args, ctx)
    if ctx.json:
        ctx.out.write(as_json({**answer, "certificates": listed}))
        return Exit.OK
    now = ctx.now()
    if listed:
        ctx.out.write(table(identity_text.CERT_HEADERS, identity_text.cert_rows(listed, now)))
    elif answer.get("certificates"):
        within = f" expiring within {span(args.expiring)}" if args.expiring is not None else ""
        of = f" of {clean(args.service)}" if args.service else ""
        ctx.out.write(f"no certificate{of}{within}\n")
    else:
        ctx.out.write("no sidecar holds a certificate yet: make a join token (meshctl token "
                      "create --service NAME) and start the sidecar with --token TOKEN\n")
    ca = answer.get("ca")
    if isinstance(ca, Mapping):
        for line in identity_text.ca_lines(ca, now):
            ctx.out.write(clean(line) + "\n")
    return Exit.OK

