"""The policy commands: get policy, apply, split, validate, diff, history, rollback.

Each reads what it needs from the API (docs/api.md) and prints it; writes are based on the
current revision (``parent``), so a write that raced another one is refused (409) rather
than silently overwriting it.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from meshui.cli.client import ApiRefusal
from meshui.cli.context import Context
from meshui.cli.documents import parse_split, read_document
from meshui.cli.errors import CliError, Exit, refused
from meshui.cli.terminal import age, as_json, as_yaml, clean, diff_text, first_line, table
from meshui.cli.wait import wait_for

HISTORY_PAGE = 100  # the API's largest page


def current_revision(ctx: Context) -> int:
    return int(ctx.client.get("/policy")["revision"])


def _problem(item: Any) -> str:
    if isinstance(item, dict):
        return f"{item.get('field', '?')}: {item.get('detail', '')}"
    return str(item)


def explained(refusal: ApiRefusal, name: str) -> CliError:
    """A refused write as one line saying what to do next."""
    body = refusal.body
    if refusal.error == "invalid_policy":
        errors = body.get("errors") or []
        more = (f" (and {len(errors) - 1} more: meshctl validate -f {name} lists them)"
                if len(errors) > 1 else "")
        return refused(f"{name}: {refusal.message}{more}; nothing was written")
    if refusal.error == "stale_parent":
        current = body.get("current") or {}
        number = current.get("revision", "?")
        by = f" ({current['author']})" if current.get("author") else ""
        return refused(f"someone else wrote revision {number}{by} meanwhile; nothing was "
                       f"written: re-run to apply on top of it (meshctl diff {number} shows "
                       f"their change)")
    return refusal


def _written(ctx: Context, args: argparse.Namespace, created: dict[str, Any]) -> int:
    """Print the new revision and its warnings, then wait for the sidecars if asked."""
    number = int(created["revision"])
    for warning in created.get("warnings") or []:
        ctx.warn(clean(_problem(warning)))
    if ctx.json:
        ctx.out.write(as_json(created))
    else:
        ctx.say(f"revision {number} created")
    if args.wait:
        wait_for(ctx.client, number, args.timeout, ctx.err if ctx.json else ctx.out)
    return Exit.OK


def _write(ctx: Context, name: str, method: str, path: str, body: dict[str, Any]) -> Any:
    try:
        return ctx.client.request(method, path, json=body)
    except ApiRefusal as refusal:
        raise explained(refusal, name) from None


def get_policy(ctx: Context, args: argparse.Namespace) -> int:
    revision = ctx.client.get("/policy")
    if args.output == "json":
        ctx.out.write(as_json(revision))
        return Exit.OK
    number = revision.get("revision", 0)
    if not number:
        ctx.out.write("# revision 0: no revision yet, the built-in defaults apply\n")
    else:
        author = revision.get("author") or "unknown"
        message = first_line(str(revision.get("message") or ""))
        header = (f"# revision {number} by {author} ({revision.get('source')}), "
                  f"{age(revision.get('created_at'), ctx.now())} ago"
                  + (f": {message}" if message else ""))
        ctx.out.write(clean(header) + "\n")
    ctx.out.write(as_yaml(revision.get("document") or {}))
    return Exit.OK


def apply(ctx: Context, args: argparse.Namespace) -> int:
    name = "stdin" if args.file == "-" else args.file
    document = read_document(args.file, ctx.stdin)
    body = {"document": document, "parent": current_revision(ctx), "message": args.message,
            "source": "cli"}
    return _written(ctx, args, _write(ctx, name, "POST", "/policy/revisions", body))


def split(ctx: Context, args: argparse.Namespace) -> int:
    weights = parse_split(args.weights)  # a usage error before any request
    message = args.message or f"split {args.service} " + " ".join(
        f"{version}={weight}" for version, weight in weights.items())
    body = {"patch": {"split": weights}, "parent": current_revision(ctx), "message": message,
            "source": "cli"}
    created = _write(ctx, f"the split of {args.service}", "PATCH",
                     f"/policy/services/{quote(args.service, safe='')}", body)
    return _written(ctx, args, created)


def rollback(ctx: Context, args: argparse.Namespace) -> int:
    body = {"revision": args.revision, "message": args.message}
    return _written(ctx, args, _write(ctx, f"revision {args.revision}", "POST",
                                      "/policy/rollback", body))


def validate(ctx: Context, args: argparse.Namespace) -> int:
    name = "stdin" if args.file == "-" else args.file
    result = ctx.client.post("/policy/validate", {"document": read_document(args.file, ctx.stdin)})
    errors = result.get("errors") or []
    if ctx.json:
        ctx.out.write(as_json(result))
    else:
        for error in errors:
            ctx.out.write(f"error: {clean(_problem(error))}\n")
        for warning in result.get("warnings") or []:
            ctx.out.write(f"warning: {clean(_problem(warning))}\n")
        unified = (result.get("diff") or {}).get("unified") or ""
        ctx.out.write(diff_text(unified, ctx.colour) if unified
                      else "no changes from the current revision\n")
    if not result.get("valid"):
        count = len(errors)
        raise refused(f"{name} is invalid ({count} error{'s' if count != 1 else ''}): fix "
                      f"{clean(errors[0].get('field', 'it')) if errors else 'it'} and validate again")
    if not ctx.json:
        ctx.out.write(f"{name} is valid\n")
    return Exit.OK


def diff(ctx: Context, args: argparse.Namespace) -> int:
    numbers: list[int] = args.revisions
    if len(numbers) > 2:
        raise CliError("diff takes at most two revisions: diff [N [M]]", Exit.USAGE)
    if not numbers:
        current = current_revision(ctx)
        if not current:
            ctx.say("no revision yet: the built-in defaults apply")
            return Exit.OK
        result = ctx.client.get(f"/policy/revisions/{current}/diff")
    elif len(numbers) == 1:
        result = ctx.client.get(f"/policy/revisions/{numbers[0]}/diff")
    else:  # as `git diff A B`: the changes from A to B
        result = ctx.client.get(f"/policy/revisions/{numbers[1]}/diff", against=numbers[0])
    if ctx.json:
        ctx.out.write(as_json(result))
    elif result.get("unified"):
        ctx.out.write(diff_text(result["unified"], ctx.colour))
    else:
        ctx.out.write("no changes\n")
    return Exit.OK


def history(ctx: Context, args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    page, count = 1, 0
    while len(rows) < args.limit:
        answer = ctx.client.get("/policy/revisions", page=page,
                                per_page=min(HISTORY_PAGE, args.limit))
        count = int(answer.get("count", 0))
        batch = answer.get("revisions") or []
        rows.extend(batch[: args.limit - len(rows)])
        if not batch or len(rows) >= count:
            break
        page += 1
    if ctx.json:
        ctx.out.write(as_json({"count": count, "revisions": rows}))
        return Exit.OK
    if not rows:
        ctx.out.write("no revision yet: the built-in defaults apply\n")
        return Exit.OK
    now = ctx.now()
    ctx.out.write(table(["REVISION", "AUTHOR", "SOURCE", "AGE", "MESSAGE"], [
        [r.get("revision"), r.get("author") or "-", r.get("source") or "-",
         age(r.get("created_at"), now), first_line(str(r.get("message") or ""))]
        for r in rows]))
    return Exit.OK
