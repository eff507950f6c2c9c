"""What meshctl reads for notifications: silence matchers, times, mute times, a contact
point's body. Pure.

The vocabulary (matcher operators, contact point kinds, days) is the API's
(``meshui.alerts.notify``), copied as ``alert_text``'s is; ``tests/cli/test_notify_text.py``
fails when they disagree. What the server checks anyway (a regular expression, a time zone,
an email address) is left to it; its refusals name the field, which ``flag_of`` turns into
the flag.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime
from typing import Any

from meshui.cli.errors import usage

MATCHER_OPS = ("=", "!=", "=~", "!~")
KINDS = ("webhook", "email", "slack")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SILENCE_STATES = ("active", "pending", "expired")
EVERY_LABEL = "..."
# `name op value`: the longest operator at the first place one starts (`a=~b` is a regex).
_MATCHER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)(.*)", re.S)
_MUTE = re.compile(r"(?:(?P<days>[A-Za-z,-]+)\s+)?(?P<start>\d\d:\d\d)-(?P<end>\d\d:\d\d)"
                   r"(?:\s+(?P<zone>\S+))?")
# What a contact point's flags set (a refusal's `contact_point.<field>`).
POINT_FLAGS = {"name": "NAME", "kind": "--kind", "url": "--url", "address": "--address",
               "send_resolved": "--send-resolved", "group_by": "--group-by",
               "group_wait_s": "--group-wait", "group_interval_s": "--group-interval",
               "repeat_interval_s": "--repeat-interval", "mute_times": "--mute"}
SILENCE_FLAGS = {"matchers": "--matcher", "starts_at": "--start", "ends_at": "--until",
                 "duration_s": "--duration", "comment": "--comment"}
_INDEXED = re.compile(r"(\w+)\[(\d+)\](?:\.(\w+))?")


def parse_matcher(text: str) -> dict[str, str]:
    """``service=~pay.*`` -> ``{"name": "service", "op": "=~", "value": "pay.*"}``."""
    match = _MATCHER.fullmatch(text)
    if match is None:
        raise usage(f"--matcher {text!r}: give NAME=VALUE, NAME!=VALUE, NAME=~REGEX or "
                    f"NAME!~REGEX (a label name: letters, digits, _)")
    name, op, value = match.groups()
    # Spaces around the operator are layout (`team = pay`), as Alertmanager's parser reads it.
    return {"name": name, "op": op, "value": value.strip()}


def parse_instant(text: str, flag: str) -> str:
    """An ISO 8601 time as the API takes it (UTC, ``Z``); without an offset it is local."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise usage(f"{flag} {text!r}: give an ISO 8601 time, e.g. 2026-12-03T18:00Z or "
                    f"2026-12-03T18:00+01:00 (without an offset: this machine's time)") from None
    if when.tzinfo is None:
        when = when.astimezone()  # the machine's zone, as a person typing a time means it
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _days(text: str, spec: str) -> list[str]:
    days: list[str] = []
    for part in text.split(","):
        first, sep, last = part.partition("-")
        if first not in DAYS or (sep and last not in DAYS):
            raise usage(f"--mute {spec!r}: days are {', '.join(DAYS)}, as a list (sat,sun) "
                        f"or a range (mon-fri)")
        start = DAYS.index(first)
        end = DAYS.index(last) if sep else start
        count = (end - start) % len(DAYS) + 1  # fri-mon wraps over the weekend
        days += [DAYS[(start + step) % len(DAYS)] for step in range(count)]
    return [day for day in DAYS if day in days]


def parse_mute(spec: str) -> dict[str, Any]:
    """``mon-fri 18:00-09:00 Europe/Paris`` -> the API's mute time (no days: every day;
    no zone: UTC; a time zone or a time the server refuses is named by it)."""
    match = _MUTE.fullmatch(spec.strip())
    if match is None:
        raise usage(f"--mute {spec!r}: give [DAYS] HH:MM-HH:MM [TIMEZONE], e.g. "
                    f"'sat,sun 00:00-24:00' or 'mon-fri 18:00-09:00 Europe/Paris'")
    days = _days(match["days"].lower(), spec) if match["days"] else []
    return {"days": days, "from": match["start"], "to": match["end"],
            "timezone": match["zone"] or "UTC"}


def parse_group_by(text: str) -> list[str]:
    """``alertname,service`` -> its label names; ``...`` groups by every label."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise usage("--group-by: give label names, comma separated (alertname,service), or "
                    "... for every label")
    return names


def _a(kind: str) -> str:
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def point_body(args: argparse.Namespace) -> dict[str, Any]:
    """A contact point's body from its flags (what is not given, the server defaults)."""
    if args.kind is None:
        raise usage(f"a new contact point needs --kind ({', '.join(KINDS)}) (or the whole "
                    f"contact point with -f FILE)")
    needs, other = ("--address", "--url") if args.kind == "email" else ("--url", "--address")
    given = {"--url": args.url, "--address": args.address}
    if given[needs] is None:
        raise usage(f"{_a(args.kind)} contact point needs {needs}")
    if given[other] is not None:
        raise usage(f"{_a(args.kind)} contact point takes {needs}, not {other}")
    body: dict[str, Any] = {"name": args.name, "kind": args.kind}
    body["address" if args.kind == "email" else "url"] = given[needs]
    optional = {"send_resolved": args.send_resolved,
                "group_by": parse_group_by(args.group_by) if args.group_by is not None else None,
                "group_wait_s": args.group_wait, "group_interval_s": args.group_interval,
                "repeat_interval_s": args.repeat_interval}
    body.update({key: value for key, value in optional.items() if value is not None})
    if args.mute:
        body["mute_times"] = [parse_mute(spec) for spec in args.mute]
    return body


def silence_body(args: argparse.Namespace) -> dict[str, Any]:
    if (args.duration is None) == (args.until is None):
        raise usage("give how long the silence lasts: --duration 2h, or --until TIME (one "
                    "of them)")
    body: dict[str, Any] = {"matchers": [parse_matcher(text) for text in args.matcher],
                            "comment": args.comment}
    if args.start is not None:
        body["starts_at"] = parse_instant(args.start, "--start")
    if args.until is not None:
        body["ends_at"] = parse_instant(args.until, "--until")
    else:
        body["duration_s"] = args.duration
    return body


def _nth(index: str) -> str:
    number = int(index) + 1
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10 if number % 100 not in (11, 12, 13)
                                             else 0, "th")
    return f"{number}{suffix}"


def flag_of(parameter: str | None, flags: dict[str, str], from_file: bool) -> str:
    """What a refusal's ``parameter`` (``silence.matchers[1].value``) is on the command line:
    ``the 2nd --matcher``; from a file, the field (``matchers[1].value``)."""
    if not parameter:
        return ""
    field = parameter.split(".", 1)[1] if "." in parameter else parameter
    if from_file:
        return field
    indexed = _INDEXED.match(field)
    if indexed is not None and indexed.group(1) in flags:
        return f"the {_nth(indexed.group(2))} {flags[indexed.group(1)]}"
    return flags.get(field, field)

