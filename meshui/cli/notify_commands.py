"""The notification commands: ``silence`` (list, create, expire), ``contact-points`` (list,
create, test, delete, attempts) and ``notifications``, each one or a few requests to the
endpoints of docs/api.md, "Contact points, silences, notifications".

A body the server refuses is one line naming the flag at fault (``the 2nd --matcher:
not a regular expression``), and nothing is saved.
"""

from __future__ import annotations

import argparse
from typing import Any

from meshui.cli import notify_text
from meshui.cli.alert_input import READ_ONLY
from meshui.cli.client import ApiRefusal
from meshui.cli.context import Context
from meshui.cli.documents import read_object
from meshui.cli.errors import CliError, Exit, refused, usage
from meshui.cli.lookup import contact_point_id
from meshui.cli.notify_input import POINT_FLAGS, SILENCE_FLAGS, flag_of, point_body, silence_body
from meshui.cli.terminal import as_json, clean, table

SILENCES = "/alerts/silences"
POINTS = "/alerts/contact-points"
# The contact point flags that set a field (with -f FILE, none may be given).
_POINT_DESTS = ("kind", "url", "address", "send_resolved", "group_by", "group_wait",
                "group_interval", "repeat_interval")


def _send(ctx: Context, method: str, path: str, body: dict[str, Any], flags: dict[str, str],
          source: str | None = None) -> Any:
    try:
        return ctx.client.request(method, path, json=body)
    except ApiRefusal as refusal:
        raise _explained(refusal, flags, source) from None


def _explained(refusal: ApiRefusal, flags: dict[str, str], source: str | None) -> CliError:
    if refusal.error != "invalid_parameter":
        return refusal
    where = flag_of(refusal.parameter, flags, source is not None)
    prefix = f"{source}: " if source else ""
    return refused(f"{prefix}{where + ': ' if where else ''}{refusal.reason()}; nothing was "
                   f"saved")


# --- silences -------------------------------------------------------------------------

def silences(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.client.get(SILENCES, **({"state": args.state} if args.state else {}))
    if ctx.json:
        ctx.out.write(as_json(answer))
        return Exit.OK
    listed = answer.get("silences") or []
    # As amtool: the expired ones only when asked (the API keeps them listed).
    shown = listed if args.state else [s for s in listed if s.get("state") != "expired"]
    if shown:
        ctx.out.write(table(notify_text.SILENCE_HEADERS,
                            notify_text.silence_rows(shown, ctx.now())))
    else:
        ctx.out.write(f"no {args.state} silence\n" if args.state
                      else "no active or pending silence\n")
    hidden = len(listed) - len(shown)
    if hidden:
        ctx.out.write(f"and {hidden} expired (meshctl silence --state expired lists "
                      f"{'them' if hidden > 1 else 'it'})\n")
    return Exit.OK


def create_silence(ctx: Context, args: argparse.Namespace) -> int:
    created = _send(ctx, "POST", SILENCES, silence_body(args), SILENCE_FLAGS)
    if ctx.json:
        ctx.out.write(as_json(created))
        return Exit.OK
    ctx.say(clean(notify_text.silence_line(created, "created", ctx.now())))
    for line in notify_text.muted_lines(created):
        ctx.say(clean(line))
    return Exit.OK


def expire_silence(ctx: Context, args: argparse.Namespace) -> int:
    expired = ctx.client.request("DELETE", f"{SILENCES}/{args.silence}")
    if ctx.json:
        ctx.out.write(as_json(expired))
    else:
        ctx.say(clean(f"silence {expired.get('id', args.silence)} expired: "
                      f"{notify_text.matchers_text(expired.get('matchers'))} is notified again"))
    return Exit.OK


# --- contact points -------------------------------------------------------------------

def contact_points(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.client.get(POINTS)
    if ctx.json:
        ctx.out.write(as_json(answer))
        return Exit.OK
    points = answer.get("contact_points") or []
    if not points:
        ctx.out.write("no contact point yet: meshctl contact-points create NAME --kind webhook "
                      "--url URL makes one\n")
        return Exit.OK
    now = ctx.now()
    ctx.out.write(table(notify_text.POINT_HEADERS, notify_text.point_rows(points, now)))
    for line in notify_text.failing_lines(points, now):
        ctx.out.write(clean(line) + "\n")
    return Exit.OK


def create_point(ctx: Context, args: argparse.Namespace) -> int:
    source = None
    if args.file is not None:
        if args.name or args.mute or any(getattr(args, d) is not None for d in _POINT_DESTS):
            raise usage("give the contact point with -f FILE or with flags, not both")
        source = "stdin" if args.file == "-" else args.file
        loaded = read_object(args.file, "contact point", ctx.stdin)
        body = {key: value for key, value in loaded.items()
                if key not in READ_ONLY | {"status", "failing_reason", "failing_since",
                                           "last_attempt", "rules"}}
    elif not args.name:
        raise usage("a new contact point needs a NAME (or the whole contact point with -f "
                    "FILE)")
    else:
        body = point_body(args)
    created = _send(ctx, "POST", POINTS, body, POINT_FLAGS, source)
    if ctx.json:
        ctx.out.write(as_json(created))
    else:
        ctx.say(clean(notify_text.point_line(created, "created")
                      + f"; try it: meshctl contact-points test {created.get('id')}"))
    return Exit.OK


def _named(ref: str) -> str:
    return f"contact point {ref}" if ref.strip().isdigit() else repr(ref.strip())


def test_point(ctx: Context, args: argparse.Namespace) -> int:
    number = contact_point_id(ctx, args.point)
    result = ctx.client.post(f"{POINTS}/{number}/test", {})
    attempt = result.get("attempt") or {}
    if ctx.json:
        ctx.out.write(as_json(result))
    elif result.get("ok"):
        took = notify_text.attempt_rows([attempt], ctx.now())[0][4]
        ctx.say(clean(f"test message to {_named(args.point)} delivered: "
                      f"{result.get('detail') or 'ok'} ({took})"))
    if result.get("ok"):
        return Exit.OK
    then = ("it is marked failing until a message gets through: fix it and test again"
            if attempt.get("permanent") else "a transient failure: retrying may help")
    raise refused(clean(f"test message to {_named(args.point)} failed: "
                        f"{result.get('detail') or 'no detail'}; {then}"))


def delete_point(ctx: Context, args: argparse.Namespace) -> int:
    gone = ctx.client.request("DELETE", f"{POINTS}/{contact_point_id(ctx, args.point)}")
    if ctx.json:
        ctx.out.write(as_json(gone))
        return Exit.OK
    rules = gone.get("rules") or []
    notified = (f"; rule{'s' if len(rules) > 1 else ''} {', '.join(str(r) for r in rules)} "
                f"no longer notif{'y' if len(rules) > 1 else 'ies'} it") if rules else ""
    ctx.say(clean(f"contact point {gone.get('id')} {str(gone.get('name'))!r} deleted{notified}"))
    return Exit.OK


def attempts(ctx: Context, args: argparse.Namespace) -> int:
    number = contact_point_id(ctx, args.point)
    answer = ctx.client.get(f"{POINTS}/{number}/attempts", limit=args.limit)
    if ctx.json:
        ctx.out.write(as_json(answer))
        return Exit.OK
    rows = answer.get("attempts") or []
    if not rows:
        ctx.out.write(f"no attempt yet: meshctl contact-points test {number} sends one\n")
        return Exit.OK
    ctx.out.write(table(notify_text.ATTEMPT_HEADERS, notify_text.attempt_rows(rows, ctx.now())))
    return Exit.OK


def notifications(ctx: Context, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.contact_point:
        params["contact_point"] = contact_point_id(ctx, args.contact_point)
    answer = ctx.client.get("/alerts/notifications", **params)
    if ctx.json:
        ctx.out.write(as_json(answer))
        return Exit.OK
    rows = answer.get("notifications") or []
    if not rows:
        ctx.out.write("no notification yet\n")
        return Exit.OK
    names = {int(p["id"]): str(p.get("name", "?"))
             for p in ctx.client.get(POINTS).get("contact_points") or []}
    ctx.out.write(table(notify_text.NOTIFICATION_HEADERS,
                        notify_text.notification_rows(rows, names, ctx.now())))
    return Exit.OK
