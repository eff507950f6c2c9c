"""What the silences and contact points pages' scripts read from the server. Pure.

Built from the notifications' own modules (``models.KINDS``, ``notify.matchers.OPS``, the
contact point schema's defaults, the silence states), so the pages hold no list of their
own; ``silence_prefill`` turns a "Silence this" link's query into a new silence.
"""

from __future__ import annotations

import re
import typing
from typing import Any

from django.http import QueryDict

from meshui.alerts.models import KINDS
from meshui.alerts.notify import labels
from meshui.alerts.notify.api import STATE_ORDER
from meshui.alerts.notify.matchers import MATCHERS_MAX, OPS
from meshui.alerts.notify.schemas import ContactPointIn, MuteTime
from meshui.alerts.pages import ALERTNAME, POLL_MS

_OP_WORDS = {"=": "is", "!=": "is not", "=~": "matches", "!~": "does not match"}
_KIND_WORDS = {
    "webhook": ("URL", "url", "https://alerts.example.com/hook",
                "The Alertmanager webhook body (version 4) is POSTed to it as JSON."),
    "slack": ("Incoming webhook URL", "url", "https://hooks.slack.com/services/…",
              "A Slack incoming webhook: a message per group, a line per alert."),
    "email": ("Addresses", "address", "oncall@example.com, lead@example.com",
              "Plain text over SMTP (MESHUI_EMAIL_*); several addresses comma separated."),
}
DURATIONS = [(1800, "30 min"), (3600, "1 h"), (2 * 3600, "2 h"), (4 * 3600, "4 h"),
             (8 * 3600, "8 h"), (86400, "1 day"), (7 * 86400, "1 week")]
DEFAULT_DURATION_S = 2 * 3600
# A matcher in a link's query: ``matcher=team=payments``, ``matcher=alertname=~pay.*``.
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]{0,63})(=~|!~|!=|=)(.*)", re.S)
_POINT_FIELDS = ("send_resolved", "group_by", "group_wait_s", "group_interval_s",
                 "repeat_interval_s")


def _days() -> list[str]:
    (literal,) = typing.get_args(MuteTime.model_fields["days"].annotation)
    return list(typing.get_args(literal))


def vocabulary() -> dict[str, Any]:
    """Every word and number the silences and contact points pages use."""
    return {
        "kinds": [{"kind": kind, "label": _KIND_WORDS[kind][0], "field": _KIND_WORDS[kind][1],
                   "placeholder": _KIND_WORDS[kind][2], "help": _KIND_WORDS[kind][3]}
                  for kind in KINDS],
        "ops": [{"op": op, "label": _OP_WORDS[op]} for op in OPS],
        "silence_states": list(STATE_ORDER),
        "durations": [{"seconds": seconds, "label": label} for seconds, label in DURATIONS],
        "default_duration_s": DEFAULT_DURATION_S,
        "days": _days(),
        "point_defaults": {name: ContactPointIn.model_fields[name].default
                           for name in _POINT_FIELDS},
        "every_label": labels.EVERY_LABEL, "alertname": ALERTNAME,
        "matchers_max": MATCHERS_MAX, "poll_ms": POLL_MS,
    }


def silence_prefill(query: QueryDict) -> dict[str, Any]:
    """A new silence from a "Silence this" link: ``?matcher=alertname=payments errors&
    matcher=source=checkout&comment=...``; what does not parse as a matcher is left out
    (the form shows what it got, the API checks the rest)."""
    found = []
    for raw in query.getlist("matcher")[:MATCHERS_MAX]:
        match = _MATCHER.fullmatch(raw)
        if match:
            found.append({"name": match[1], "op": match[2], "value": match[3]})
    return {"matchers": found or [{"name": ALERTNAME, "op": "=", "value": ""}],
            "comment": query.get("comment", "")[:500], "duration_s": DEFAULT_DURATION_S,
            "open": bool(found) or "new" in query}
