"""How meshctl shows silences, contact points, their attempts and notifications. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from meshui.cli.alert_text import FIRING, target_text
from meshui.cli.terminal import first_line, parse_time, relative

SILENCE_HEADERS = ["ID", "STATE", "MATCHERS", "STARTS", "ENDS", "MATCHES", "BY", "COMMENT"]
POINT_HEADERS = ["ID", "NAME", "KIND", "DESTINATION", "STATUS", "LAST ATTEMPT", "RULES"]
ATTEMPT_HEADERS = ["AT", "RESULT", "FOR", "CODE", "TOOK", "DETAIL"]
NOTIFICATION_HEADERS = ["ID", "CONTACT POINT", "GROUP", "STATUS", "ALERTS", "STATE",
                        "ATTEMPTS", "CREATED", "ERROR"]
MATCHING_MAX = 50  # the API lists at most this many matching alerts
RULES_SHOWN = 5


def matchers_text(matchers: Any) -> str:
    """``team=payments, service=~pay.*``."""
    if not isinstance(matchers, list):
        return "?"
    return ", ".join(f"{m.get('name', '?')}{m.get('op', '=')}{m.get('value', '')}"
                     for m in matchers if isinstance(m, Mapping))


def matches_text(matching: Any) -> str:
    """How many alerts a silence matches now, and how many of them fire."""
    if not isinstance(matching, list) or not matching:
        return "0"
    count = f"{len(matching)}+" if len(matching) >= MATCHING_MAX else str(len(matching))
    firing = sum(1 for alert in matching if alert.get("state") in FIRING)
    return f"{count} ({firing} firing)" if firing else count


def silence_rows(silences: Sequence[Mapping[str, Any]], now: datetime) -> list[list[str]]:
    return [[str(s.get("id", "?")), str(s.get("state", "?")), matchers_text(s.get("matchers")),
             relative(s.get("starts_at"), now), relative(s.get("ends_at"), now),
             matches_text(s.get("matching")) if s.get("state") != "expired" else "-",
             str(s.get("created_by") or "-"), first_line(str(s.get("comment") or ""), 40)]
            for s in silences]


def muted_lines(silence: Mapping[str, Any]) -> list[str]:
    """The alerts a silence matches now, one a line (the API lists at most 50)."""
    return [f"  {alert.get('name', '?')} on {target_text(alert.get('target'))} "
            f"({alert.get('state', '?')})" for alert in silence.get("matching") or []]


def moment(value: Any, now: datetime) -> str:
    """``2026-12-03 14:00:00 UTC (in 2h)``: an API time to the second, and how far."""
    then = parse_time(value) if isinstance(value, str) else None
    if then is None:
        return "?"
    return f"{then.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({relative(value, now)})"


def silence_line(silence: Mapping[str, Any], verb: str, now: datetime) -> str:
    """``silence 4 created: active until 2026-12-03 14:00:00 UTC (in 2h), matching 1
    alert``."""
    state = str(silence.get("state", "?"))
    ends = f"until {moment(silence.get('ends_at'), now)}"
    when = (f"pending from {moment(silence.get('starts_at'), now)} {ends}"
            if state == "pending" else f"{state} {ends}")
    count = len(silence.get("matching") or [])
    matching = (f"matching {count}{'+' if count >= MATCHING_MAX else ''} alert"
                f"{'s' if count != 1 else ''}" + (":" if count else " now"))
    return f"silence {silence.get('id', '?')} {verb}: {when}, {matching}"


def destination(point: Mapping[str, Any]) -> str:
    """Where a contact point sends, without what may be a secret: a Slack webhook's path
    (its token), a URL's query and password."""
    if point.get("kind") == "email":
        return str(point.get("address") or "?")
    url = str(point.get("url") or "")
    parts = urlsplit(url)
    if not parts.hostname:
        return "?"
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    if point.get("kind") == "slack":
        return f"{parts.scheme}://{host}/…"
    return f"{parts.scheme}://{host}{parts.path}" + ("?…" if parts.query else "")


def _last(attempt: Any, now: datetime) -> str:
    if not isinstance(attempt, Mapping):
        return "-"
    return f"{relative(attempt.get('at'), now)} {'ok' if attempt.get('ok') else 'failed'}"


def _rules(rules: Any) -> str:
    if not isinstance(rules, list) or not rules:
        return "-"
    shown = ",".join(str(rule) for rule in rules[:RULES_SHOWN])
    return shown + (f" (+{len(rules) - RULES_SHOWN})" if len(rules) > RULES_SHOWN else "")


def point_rows(points: Sequence[Mapping[str, Any]], now: datetime) -> list[list[str]]:
    return [[str(p.get("id", "?")), str(p.get("name", "?")), str(p.get("kind", "?")),
             destination(p), str(p.get("status", "?")), _last(p.get("last_attempt"), now),
             _rules(p.get("rules"))] for p in points]


def failing_lines(points: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    """Why each failing contact point fails, as proxy-status says why a sidecar NACKed."""
    return [f"{p.get('name', '?')}: failing since {relative(p.get('failing_since'), now)}: "
            f"{p.get('failing_reason') or 'no reason given'}"
            for p in points if p.get("status") == "failing"]


def point_line(point: Mapping[str, Any], verb: str) -> str:
    return (f"contact point {point.get('id', '?')} {str(point.get('name', '?'))!r} {verb} "
            f"({point.get('kind', '?')} to {destination(point)})")


def _took(milliseconds: Any) -> str:
    if not isinstance(milliseconds, int | float):
        return "-"
    return f"{milliseconds:.0f}ms" if milliseconds >= 10 else f"{milliseconds:.1f}ms"


def attempt_rows(attempts: Sequence[Mapping[str, Any]], now: datetime) -> list[list[str]]:
    """RESULT: ok, failed (retried), or failed (permanent: fix the contact point)."""
    def result(a: Mapping[str, Any]) -> str:
        if a.get("ok"):
            return "ok"
        return "failed (permanent)" if a.get("permanent") else "failed"

    return [[relative(a.get("at"), now), result(a), str(a.get("status", "?")),
             str(a.get("status_code") if a.get("status_code") is not None else "-"),
             _took(a.get("duration_ms")), first_line(str(a.get("detail") or ""), 80)]
            for a in attempts]


def group_text(labels: Any) -> str:
    if not isinstance(labels, Mapping) or not labels:
        return "-"
    return ",".join(f"{name}={value}" for name, value in sorted(labels.items()))


def _point_name(contact: Any, names: Mapping[int, str]) -> str:
    return names.get(contact, str(contact)) if isinstance(contact, int) else "?"


def notification_rows(notifications: Sequence[Mapping[str, Any]], names: Mapping[int, str],
                      now: datetime) -> list[list[str]]:
    return [[str(n.get("id", "?")), _point_name(n.get("contact_point"), names),
             first_line(group_text(n.get("group_labels")), 40), str(n.get("status", "?")),
             str(n.get("alerts", "?")), str(n.get("state", "?")), str(n.get("attempts", "?")),
             relative(n.get("created_at"), now), first_line(str(n.get("last_error") or "-"), 60)]
            for n in notifications]
