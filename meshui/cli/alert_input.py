"""What meshctl reads for alerts: durations, thresholds, labels, targets, a rule's body. Pure.

A rule is given either with flags (``--edge checkout,payments --metric error_rate ...``) or
as the API's body in a file (``-f rule.yaml``); both end as the body of ``POST
/api/v1/alerts/rules`` (docs/api.md, "Alerts"). What can be checked without the server is
checked here, as a usage error (exit 2) naming the flag; the rest (a threshold out of its
metric's range, recover past fire) the server refuses, naming the field, which
``flag_of`` turns back into the flag.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from meshui.cli.errors import usage

# What a rule file may hold besides the body: what `meshctl alert get -o json` prints.
READ_ONLY = frozenset({"id", "created_at", "updated_at"})
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
# The flag that sets each field of a rule (what a refusal naming `rule.<field>` means).
FLAGS = {"name": "NAME", "target": "--service/--edge/--instance", "target.service": "--service",
         "target.version": "--version", "target.source": "--edge", "target.target": "--edge",
         "target.instance": "--instance", "metric": "--metric", "window_s": "--window",
         "op": "--op", "fire": "--fire", "recover": "--recover", "for_s": "--for",
         "keep_firing_s": "--keep-firing", "severity": "--severity", "labels": "--label",
         "contact_points": "--contact-point"}


def parse_duration(text: str) -> int:
    """Seconds from ``90``, ``90s``, ``5m``, ``2h``, ``1d`` or ``1h30m`` (argparse's type)."""
    value = text.strip().lower()
    if value.isdigit():
        return int(value)
    match = _DURATION.fullmatch(value)
    if not value or match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: give seconds (90) "
                                         f"or 90s, 5m, 2h, 1d, 1h30m")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parse_threshold(text: str) -> float:
    """A number, or a percentage (``20%`` is 0.2: an error rate is a ratio)."""
    value = text.strip()
    percent = value.endswith("%")
    try:
        number = float(value[:-1] if percent else value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (or a percentage, "
                                         f"20%)") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return number / 100 if percent else number


def parse_labels(items: Sequence[str], flag: str = "--label") -> dict[str, str]:
    """``["team=payments"]`` -> ``{"team": "payments"}``; the server checks names and values."""
    labels: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise usage(f"{flag} {item!r}: give NAME=VALUE, e.g. {flag} team=payments")
        if name in labels:
            raise usage(f"{flag} {name} is given twice; give each label once")
        labels[name] = value
    return labels


def parse_edge(text: str) -> tuple[str, str]:
    """``checkout,payments`` -> the edge's source and target."""
    source, sep, target = text.partition(",")
    if not sep or not source.strip() or not target.strip() or "," in target:
        raise usage(f"--edge {text!r}: give the caller and the callee, SOURCE,TARGET "
                    f"(e.g. --edge checkout,payments; * is any)")
    return source.strip(), target.strip()


def target_of(args: argparse.Namespace) -> dict[str, str] | None:
    """The target the flags give (None: no target flag), or a usage error naming them.

    The shapes: --service S, --service S --version V, --edge A,B, --edge A,B --version V,
    --instance I, --instance I --service S.
    """
    service, version = args.service, args.version
    edge, instance = args.edge, args.instance
    if edge is not None and (service is not None or instance is not None):
        raise usage("--edge is a target of its own: give --edge SOURCE,TARGET (and "
                    "--version), without --service or --instance")
    if version is not None and service is None and edge is None:
        raise usage("--version needs --service S or --edge SOURCE,TARGET: the version of "
                    "which service?")
    if instance is not None and version is not None:
        raise usage("--instance takes no --version (an instance runs one version)")
    if edge is not None:
        source, target = parse_edge(edge)
        found = {"source": source, "target": target}
    elif service is None and instance is None:
        return None
    else:
        found = {"service": service} if service is not None else {}
        if instance is not None:
            found["instance"] = instance
    if version is not None:
        found["version"] = version
    return found


# argparse dest -> the body's field, for the flags that set one field each.
_SCALARS = {"metric": "metric", "window": "window_s", "op": "op", "fire": "fire",
            "recover": "recover", "for_s": "for_s", "keep_firing": "keep_firing_s",
            "severity": "severity"}


def flags_given(args: argparse.Namespace) -> bool:
    """Whether any flag that sets a rule field was given."""
    return (target_of(args) is not None or bool(args.label) or bool(args.contact_point)
            or any(getattr(args, dest) is not None for dest in _SCALARS)
            or getattr(args, "rename", None) is not None)


def rule_body(args: argparse.Namespace, base: Mapping[str, Any], contact_points: list[int] | None
              ) -> dict[str, Any]:
    """The body ``base`` (a rule's, or empty) with the flags' fields put over it.

    ``--label`` and ``--contact-point``, when given, replace the rule's labels and contact
    points (``contact_points``: their ids, resolved by the caller).
    """
    body = {key: value for key, value in base.items() if key not in READ_ONLY}
    name = getattr(args, "rename", None) or getattr(args, "name", None)
    if name is not None:
        body["name"] = name
    target = target_of(args)
    if target is not None:
        body["target"] = target
    for dest, field in _SCALARS.items():
        value = getattr(args, dest)
        if value is not None:
            body[field] = value
    if args.label:
        body["labels"] = parse_labels(args.label)
    if contact_points is not None:
        body["contact_points"] = contact_points
    return body


def body_of_file(loaded: Mapping[str, Any]) -> dict[str, Any]:
    """A rule file's body: what `meshctl alert get -o json` prints applies again."""
    return {key: value for key, value in loaded.items() if key not in READ_ONLY}


def flag_of(parameter: str | None, from_file: bool) -> str:
    """What a refusal's ``parameter`` (``rule.recover``) is on the command line."""
    if not parameter:
        return ""
    field = parameter.split(".", 1)[1] if "." in parameter else parameter
    if from_file:
        return field
    if field.startswith("labels."):
        return f"--label {field.split('.', 1)[1]}"
    return FLAGS.get(field, FLAGS.get(field.split(".", 1)[0], field))
