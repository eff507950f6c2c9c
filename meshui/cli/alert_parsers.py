"""The command line of the alert commands: ``alerts``, ``alert ...``, ``silence ...``,
``contact-points ...`` (docs/cli.md). ``main.parser`` adds them with ``add``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from meshui.cli import alert_commands, notify_commands
from meshui.cli.alert_input import parse_duration, parse_threshold
from meshui.cli.alert_text import METRICS, OPS, SEVERITIES, STATES
from meshui.cli.arguments import bounded, command, output
from meshui.cli.notify_input import KINDS, SILENCE_STATES

MAX_HISTORY = 500  # the API's largest page: one request, its JSON as it is
MAX_LIMIT = 500  # attempts and notifications: the API's largest limit


def one_of(choices: Sequence[str], what: str) -> Callable[[str], str]:
    """An argparse type taking any case (``firing`` is ``Firing``), the API's spelling out."""
    by_lower = {choice.lower(): choice for choice in choices}

    def parse(text: str) -> str:
        found = by_lower.get(text.strip().lower())
        if found is None:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what}: "
                                             f"{', '.join(choices)}")
        return found

    return parse


def _actions(parent: argparse.ArgumentParser, required: bool) -> Any:
    return parent.add_subparsers(dest="action", metavar="ACTION", required=required)


def _rule_flags(sub: argparse.ArgumentParser, *, named: str) -> None:
    """The flags that give a rule (create, update, preview): ``named`` is how NAME is given."""
    if named == "positional":
        sub.add_argument("name", nargs="?", metavar="NAME", help="the rule's name (alertname)")
    elif named == "optional":
        sub.add_argument("name", nargs="?", metavar="NAME",
                         help="a name for the rule (default: preview)")
    else:
        sub.add_argument("--name", dest="rename", help="rename the rule")
    sub.add_argument("-f", "--file", help="the rule as the API's JSON body, in YAML or JSON; "
                                          "- for stdin (instead of the flags)")
    target = sub.add_argument_group("target (one of: --service S [--version V], --edge SRC,DST "
                                    "[--version V], --instance I [--service S]; * is any)")
    target.add_argument("--service", help="what a service served")
    target.add_argument("--version", help="only what this version of it served (or answered)")
    target.add_argument("--edge", metavar="SRC,DST", help="the calls from SRC to DST")
    target.add_argument("--instance", help="what one instance (its proxy id) served")
    rule = sub.add_argument_group("condition")
    rule.add_argument("--metric", choices=METRICS, metavar="METRIC",
                      help=f"one of {', '.join(METRICS)}")
    rule.add_argument("--window", type=parse_duration, metavar="DURATION",
                      help="the window the metric is computed over (10s..1h): 60, 60s, 5m")
    rule.add_argument("--op", choices=OPS, help="'>': fires above --fire; '<': below it")
    rule.add_argument("--fire", type=parse_threshold, metavar="X",
                      help="the threshold that fires (an error rate is a ratio: 0.2 or 20%%)")
    rule.add_argument("--recover", type=parse_threshold, metavar="X",
                      help="the threshold it recovers past (default: --fire)")
    rule.add_argument("--for", dest="for_s", type=parse_duration, metavar="DURATION",
                      help="pending period: the breach must hold this long (default 0)")
    rule.add_argument("--keep-firing", type=parse_duration, metavar="DURATION",
                      help="keep firing this long once recovered (default 0)")
    rule.add_argument("--severity", type=one_of(SEVERITIES, "severity"), metavar="SEVERITY",
                      help=f"{', '.join(SEVERITIES)} (default warning)")
    rule.add_argument("--label", action="append", default=[], metavar="NAME=VALUE",
                      help="a label (repeat for more; given, they replace the rule's)")
    rule.add_argument("--contact-point", action="append", default=[], metavar="ID|NAME",
                      help="a contact point to notify (repeat; given, they replace the rule's)")


def add_alert_commands(commands: Any) -> None:
    sub = command(commands, "alerts", alert_commands.alerts,
                  "every rule on every target: its state, since when, its value")
    sub.add_argument("--state", type=one_of(STATES, "state"), metavar="STATE",
                     help=f"only this state: {', '.join(STATES)}")
    sub.add_argument("--severity", type=one_of(SEVERITIES, "severity"), metavar="SEVERITY",
                     help=f"only this severity: {', '.join(SEVERITIES)}")
    sub.add_argument("--label", metavar="NAME=VALUE", help="only rules with this label")
    sub.add_argument("--rule", metavar="ID|NAME", help="only this rule's targets")
    output(sub)

    alert = commands.add_parser("alert", help="alert rules: list, get, create, update, delete, "
                                "history, preview", description="Alert rules (docs/alerts.md).")
    actions = _actions(alert, required=True)

    sub = command(actions, "list", alert_commands.list_rules, "every alert rule, by name")
    output(sub)

    sub = command(actions, "get", alert_commands.get_rule,
                  "one rule, as YAML that alert update -f takes again")
    sub.add_argument("rule", metavar="ID|NAME")
    output(sub, ("yaml", "json"))

    sub = command(actions, "create", alert_commands.create_rule,
                  "a new rule, from flags or a file (evaluated from the next cycle)")
    _rule_flags(sub, named="positional")
    output(sub)

    sub = command(actions, "update", alert_commands.update_rule,
                  "change a rule: the flags given (over its current fields), or a whole file")
    sub.add_argument("rule", metavar="ID|NAME")
    _rule_flags(sub, named="rename")
    output(sub)

    sub = command(actions, "delete", alert_commands.delete_rule,
                  "delete a rule with its states and history")
    sub.add_argument("rule", metavar="ID|NAME")
    output(sub)

    sub = command(actions, "history", alert_commands.history,
                  "a rule's state changes, newest first")
    sub.add_argument("rule", metavar="ID|NAME")
    sub.add_argument("--limit", type=bounded(int, 1, MAX_HISTORY), default=20,
                     help=f"how many (default 20, at most {MAX_HISTORY})")
    output(sub)

    sub = command(actions, "preview", alert_commands.preview,
                  "backtest a rule over the last hour: when it would have fired (saves nothing)")
    sub.add_argument("--rule", metavar="ID|NAME",
                     help="start from this rule (the flags given change it)")
    _rule_flags(sub, named="optional")
    output(sub)


def add_notify_commands(commands: Any) -> None:
    silence = command(commands, "silence", notify_commands.silences,
                      "silences: list (active and pending), create, expire")
    silence.add_argument("--state", choices=SILENCE_STATES,
                         help="only this state (default: active and pending)")
    output(silence)
    actions = _actions(silence, required=False)
    sub = command(actions, "create", notify_commands.create_silence,
                  "a new silence: the alerts its matchers match are not notified until it ends")
    sub.add_argument("--matcher", action="append", required=True, metavar="MATCHER",
                     help="NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX on the alert's "
                          "labels (alertname, severity, service, version, source, target, "
                          "instance, the rule's labels); repeat: all must match")
    sub.add_argument("--duration", type=parse_duration, metavar="DURATION",
                     help="how long, from the start: 2h, 30m, 1d")
    sub.add_argument("--until", metavar="TIME", help="or when it ends (ISO 8601)")
    sub.add_argument("--start", metavar="TIME", help="when it starts (ISO 8601; default now)")
    sub.add_argument("--comment", default="", help="why (shown in the list)")
    output(sub)
    sub = command(actions, "expire", notify_commands.expire_silence,
                  "end a silence now (it stays listed, expired)")
    sub.add_argument("silence", type=bounded(int, 1), metavar="ID")
    output(sub)

    points = command(commands, "contact-points", notify_commands.contact_points,
                     "contact points: list (with whether each works), create, test, delete, "
                     "attempts")
    output(points)
    actions = _actions(points, required=False)
    sub = command(actions, "create", notify_commands.create_point,
                  "a new contact point: a webhook, an email address or a Slack webhook")
    sub.add_argument("name", nargs="?", metavar="NAME")
    sub.add_argument("-f", "--file", help="the contact point as the API's JSON body, in YAML "
                                          "or JSON; - for stdin (instead of the flags)")
    sub.add_argument("--kind", choices=KINDS, help="where it sends")
    sub.add_argument("--url", help="webhook and slack: the URL messages are POSTed to")
    sub.add_argument("--address", help="email: one or more addresses, comma separated")
    sub.add_argument("--send-resolved", action=argparse.BooleanOptionalAction, default=None,
                     help="also say when alerts resolve (default: yes)")
    sub.add_argument("--group-by", metavar="LABEL,...",
                     help="alerts with these labels equal share a message (default alertname; "
                          "...: every label)")
    sub.add_argument("--group-wait", type=parse_duration, metavar="DURATION",
                     help="a new group waits this long for more alerts (default 30s)")
    sub.add_argument("--group-interval", type=parse_duration, metavar="DURATION",
                     help="a group's changes go out at most this often (default 5m)")
    sub.add_argument("--repeat-interval", type=parse_duration, metavar="DURATION",
                     help="a group still firing is notified again after this (default 4h)")
    sub.add_argument("--mute", action="append", default=[], metavar="'[DAYS] HH:MM-HH:MM [TZ]'",
                     help="a weekly mute time, e.g. 'sat,sun 00:00-24:00' or 'mon-fri "
                          "18:00-09:00 Europe/Paris' (repeat)")
    output(sub)
    for name, handler, text in (
            ("test", notify_commands.test_point, "send a test message now and say what came "
                                                 "of it"),
            ("delete", notify_commands.delete_point, "delete a contact point (its rules stop "
                                                     "notifying it)")):
        sub = command(actions, name, handler, text)
        sub.add_argument("point", metavar="ID|NAME")
        output(sub)
    sub = command(actions, "attempts", notify_commands.attempts,
                  "every attempt at sending to a contact point, newest first")
    sub.add_argument("point", metavar="ID|NAME")
    sub.add_argument("--limit", type=bounded(int, 1, MAX_LIMIT), default=20,
                     help=f"how many (default 20, at most {MAX_LIMIT})")
    output(sub)

    sub = command(commands, "notifications", notify_commands.notifications,
                  "the messages made for contact points, newest first, and their delivery")
    sub.add_argument("--contact-point", metavar="ID|NAME", help="only those of this one")
    sub.add_argument("--limit", type=bounded(int, 1, MAX_LIMIT), default=20,
                     help=f"how many (default 20, at most {MAX_LIMIT})")
    output(sub)


def add(commands: Any) -> None:
    add_alert_commands(commands)
    add_notify_commands(commands)
