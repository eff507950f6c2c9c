"""The alert commands: ``alerts`` (where every rule stands) and ``alert list|get|create|
update|delete|history|preview`` (the rules), each one or a few requests to the alerts
endpoints (docs/api.md, "Alerts").

A rule comes from flags or from a file holding the API's body (``alert_input``); a rule the
server refuses is one line naming the flag (or the file's field) at fault, and nothing is
saved.
"""

from __future__ import annotations

import argparse
from typing import Any

from meshui.cli import alert_text
from meshui.cli.alert_input import body_of_file, flag_of, flags_given, parse_labels, rule_body
from meshui.cli.client import ApiRefusal
from meshui.cli.context import Context
from meshui.cli.documents import read_object
from meshui.cli.errors import CliError, Exit, refused, usage
from meshui.cli.lookup import contact_point_ids, rule_id
from meshui.cli.terminal import age, as_json, as_yaml, clean, table

RULES = "/alerts/rules"


def alerts(ctx: Context, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    if args.state:
        params["state"] = args.state
    if args.severity:
        params["severity"] = args.severity
    if args.label:
        parse_labels([args.label])  # NAME=VALUE, or a usage error before any request
        params["label"] = args.label
    if args.rule:
        params["rule"] = rule_id(ctx, args.rule)
    answer = ctx.client.get("/alerts", **params)
    if ctx.json:
        ctx.out.write(as_json(answer))
        return Exit.OK
    listed = answer.get("alerts") or []
    if not listed:
        ctx.out.write("no alert matches those filters\n" if params else
                      "no alert rule yet: meshctl alert create NAME ... makes one\n")
        return Exit.OK
    ctx.out.write(table(alert_text.ALERT_HEADERS, alert_text.alert_rows(listed, ctx.now())))
    for note in alert_text.alert_notes(listed):
        ctx.out.write(clean(note) + "\n")
    ctx.out.write(clean(alert_text.alert_summary(listed, answer.get("interval_s"))) + "\n")
    return Exit.OK


def list_rules(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.client.get(RULES)
    if ctx.json:
        ctx.out.write(as_json(answer))
        return Exit.OK
    rules = answer.get("rules") or []
    if not rules:
        ctx.out.write("no alert rule yet: meshctl alert create NAME ... makes one\n")
        return Exit.OK
    ctx.out.write(table(alert_text.RULE_HEADERS, alert_text.rule_rows(rules)))
    return Exit.OK


def get_rule(ctx: Context, args: argparse.Namespace) -> int:
    rule = ctx.client.get(f"{RULES}/{rule_id(ctx, args.rule)}")
    if args.output == "json":
        ctx.out.write(as_json(rule))
        return Exit.OK
    now = ctx.now()
    header = (f"# {alert_text.rule_line(rule)}; created {age(rule.get('created_at'), now)} "
              f"ago, updated {age(rule.get('updated_at'), now)} ago")
    ctx.out.write(clean(header) + "\n" + as_yaml(body_of_file(rule)))
    return Exit.OK


def _missing(body: dict[str, Any], named: bool) -> list[str]:
    """The flags a rule made of flags cannot do without (the server requires them)."""
    needed = [] if named or body.get("name") else ["NAME"]
    if not body.get("target"):
        needed.append("a target (--service, --edge or --instance)")
    needed += [flag for flag, field in (("--metric", "metric"), ("--window", "window_s"))
               if body.get(field) is None]
    return needed


def _body(ctx: Context, args: argparse.Namespace, base: dict[str, Any]
          ) -> tuple[dict[str, Any], str | None]:
    """The rule's body and the file it came from (None: from flags)."""
    if args.file is not None:
        if flags_given(args) or getattr(args, "name", None):
            raise usage("give the rule with -f FILE or with flags, not both")
        name = "stdin" if args.file == "-" else args.file
        return body_of_file(read_object(args.file, "alert rule", ctx.stdin)), name
    contacts = contact_point_ids(ctx, args.contact_point) if args.contact_point else None
    return rule_body(args, base, contacts), None


def explained(refusal: ApiRefusal, source: str | None, outcome: str) -> CliError:
    """A refused rule as one line naming the flag (or the file's field) at fault."""
    if refusal.error != "invalid_parameter":
        return refusal
    where = flag_of(refusal.parameter, source is not None)
    prefix = f"{source}: " if source else ""
    return refused(f"{prefix}{where + ': ' if where else ''}{refusal.reason()}{outcome}")


def _send(ctx: Context, method: str, path: str, body: dict[str, Any], source: str | None,
          outcome: str = "; nothing was saved") -> Any:
    try:
        return ctx.client.request(method, path, json=body)
    except ApiRefusal as refusal:
        raise explained(refusal, source, outcome) from None


def _saved(ctx: Context, rule: dict[str, Any], verb: str) -> int:
    if ctx.json:
        ctx.out.write(as_json(rule))
    else:
        ctx.say(clean(alert_text.rule_line(rule, verb)))
    return Exit.OK


def create_rule(ctx: Context, args: argparse.Namespace) -> int:
    body, source = _body(ctx, args, {})
    missing = [] if source else _missing(body, named=False)
    if missing:
        raise usage(f"a new rule needs {', '.join(missing)} (or the whole rule with -f FILE)")
    return _saved(ctx, _send(ctx, "POST", RULES, body, source), "created")


def update_rule(ctx: Context, args: argparse.Namespace) -> int:
    number = rule_id(ctx, args.rule)
    if args.file is None and not flags_given(args):
        raise usage("give what to change (e.g. --fire 0.3) or the whole rule with -f FILE")
    base = {} if args.file is not None else ctx.client.get(f"{RULES}/{number}")
    body, source = _body(ctx, args, base)
    return _saved(ctx, _send(ctx, "PUT", f"{RULES}/{number}", body, source), "updated")


def delete_rule(ctx: Context, args: argparse.Namespace) -> int:
    gone = ctx.client.request("DELETE", f"{RULES}/{rule_id(ctx, args.rule)}")
    if ctx.json:
        ctx.out.write(as_json(gone))
    else:
        ctx.say(clean(f"rule {gone.get('id')} {str(gone.get('name'))!r} deleted, with its "
                      f"states and history"))
    return Exit.OK


def history(ctx: Context, args: argparse.Namespace) -> int:
    number = rule_id(ctx, args.rule)
    answer = ctx.client.get(f"{RULES}/{number}/history", per_page=args.limit)
    if ctx.json:
        ctx.out.write(as_json(answer))
        return Exit.OK
    transitions = answer.get("transitions") or []
    if not transitions:
        ctx.out.write(f"rule {number} has not changed state yet\n")
        return Exit.OK
    metric = str(ctx.client.get(f"{RULES}/{number}").get("metric", ""))
    ctx.out.write(table(alert_text.HISTORY_HEADERS,
                        alert_text.history_rows(transitions, metric, ctx.now())))
    count = int(answer.get("count") or 0)
    if count > len(transitions):
        ctx.out.write(f"the newest {len(transitions)} of {count} state changes "
                      f"(--limit shows more)\n")
    return Exit.OK


def preview(ctx: Context, args: argparse.Namespace) -> int:
    if args.file is not None and args.rule is not None:
        raise usage("give the rule with -f FILE or --rule ID|NAME, not both")
    base = ctx.client.get(f"{RULES}/{rule_id(ctx, args.rule)}") if args.rule else {}
    body, source = _body(ctx, args, base)
    if source is None:
        body.setdefault("name", "preview")
        missing = _missing(body, named=True)
        if missing:
            raise usage(f"a preview needs {', '.join(missing)} (or --rule ID|NAME, or -f FILE)")
    answer = _send(ctx, "POST", f"{RULES}/preview", body, source, outcome="")
    if ctx.json:
        ctx.out.write(as_json(answer))
        return Exit.OK
    rows = alert_text.preview_rows(answer, ctx.now())
    if rows:
        ctx.out.write(table(alert_text.PREVIEW_HEADERS, rows))
    for line in alert_text.preview_summary(answer):
        ctx.out.write(clean(line) + "\n")
    return Exit.OK

