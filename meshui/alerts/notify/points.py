"""A contact point's fields checked together; ``PointProblem`` names the one at fault."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from meshui.alerts.models import KINDS
from meshui.alerts.notify import labels, mute
from meshui.alerts.notify.matchers import NAME

URL_MAX = 2000
ADDRESSES_MAX = 20
GROUP_BY_MAX = 20
LIMITS = {"group_wait_s": (0, 3600), "group_interval_s": (1, 86400),
          "repeat_interval_s": (60, 30 * 86400)}
DEFAULTS = {"send_resolved": True, "group_by": ["alertname"], "group_wait_s": 30,
            "group_interval_s": 300, "repeat_interval_s": 4 * 3600, "mute_times": []}


class PointProblem(ValueError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


def _url(raw: Any, kind: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise PointProblem("url", f"a {kind} contact point needs a url")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(raw) > URL_MAX:
        raise PointProblem("url", f"the url must be http:// or https:// with a host, at most "
                                  f"{URL_MAX} characters")
    return raw


def _addresses(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise PointProblem("address", "an email contact point needs an address (or several, "
                                      "comma separated)")
    found = [part.strip() for part in raw.split(",") if part.strip()]
    if len(found) > ADDRESSES_MAX:
        raise PointProblem("address", f"at most {ADDRESSES_MAX} addresses")
    for address in found:
        try:
            validate_email(address)
        except ValidationError:
            raise PointProblem("address", f"{address[:80]!r} is not an email address") from None
    return ", ".join(found)


def check(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The model's fields (``config`` holding the url or address) from the API's body."""
    fields = {**DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}
    kind = fields.get("kind")
    if kind not in KINDS:
        raise PointProblem("kind", f"kind is one of {', '.join(KINDS)}")
    config = ({"address": _addresses(fields.get("address"))} if kind == "email"
              else {"url": _url(fields.get("url"), kind)})
    extra = "url" if kind == "email" else "address"
    if fields.get(extra):
        raise PointProblem(extra, f"a {kind} contact point has no {extra}")
    group_by = fields["group_by"]
    if not isinstance(group_by, list) or len(group_by) > GROUP_BY_MAX or any(
            not isinstance(name, str) or not (name == labels.EVERY_LABEL or NAME.fullmatch(name))
            for name in group_by):
        raise PointProblem("group_by", f"group_by is a list of at most {GROUP_BY_MAX} label "
                                       f"names, or [\"{labels.EVERY_LABEL}\"] for every label")
    for name, (low, high) in LIMITS.items():
        value = fields[name]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise PointProblem(name, f"{name} is whole seconds from {low} to {high}")
    if fields["repeat_interval_s"] < fields["group_interval_s"]:
        raise PointProblem("repeat_interval_s", "repeat_interval_s is at least group_interval_s")
    try:
        mute.parse(fields["mute_times"] or [])
    except mute.MuteProblem as exc:
        raise PointProblem(exc.field, str(exc)) from None
    return {"name": fields["name"], "kind": kind, "config": config,
            "send_resolved": bool(fields["send_resolved"]), "group_by": list(group_by),
            **{name: fields[name] for name in LIMITS}, "mute_times": fields["mute_times"] or []}
