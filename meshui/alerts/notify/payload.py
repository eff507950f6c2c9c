"""The messages: Alertmanager's webhook body, and the Slack and email text made from it.

Every notification is stored as the webhook body (version 4, as Alertmanager sends it), so
an existing Alertmanager receiver takes ours unchanged; Slack and email render the same
body. Names in it come from the network (services, instances, rule labels): Slack's
markup characters are escaped, email is plain text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from meshui.alerts.metrics import UNITS
from meshui.alerts.notify.grouping import FIRING, RESOLVED, Alert, Message

# Alertmanager's zero time: a firing alert has not ended.
NEVER = "0001-01-01T00:00:00Z"
# A message carries at most this many alerts; ``truncatedAlerts`` counts the rest.
ALERTS_MAX = 200
TARGET_LABELS = ("source", "target", "service", "version", "instance")


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def shown_value(metric: str, value: float | None) -> str:
    """A metric's value as a person reads it: an error rate in %, latency in ms."""
    if value is None:
        return "no data"
    unit = UNITS.get(metric, "")
    if unit == "ratio":
        return f"{value * 100:.3g} %"
    if unit == "boolean":
        return "no data" if value >= 0.5 else "data"
    return f"{value:.4g} {unit}"


def describe(metric: str, value: float | None, detail: str, target_label: str,
                op: str, fire: float) -> dict[str, str]:
    return {"summary": f"{metric} of {target_label} is {shown_value(metric, value)} "
                       f"(fires {op} {shown_value(metric, fire)})",
            "description": detail, "value": "" if value is None else f"{value:g}",
            "metric": metric}


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {name: value for name, value in first.items()
            if all(other.get(name) == value for other in maps[1:])}


def _alert_json(alert: Alert, status: str, now: float, external_url: str) -> dict[str, Any]:
    return {"status": status, "labels": dict(alert.labels),
            "annotations": dict(alert.annotations), "startsAt": rfc3339(alert.starts_at),
            "endsAt": rfc3339(now) if status == RESOLVED else NEVER,
            "generatorURL": f"{external_url}/alerts/rules/{alert.rule}",
            "fingerprint": alert.fingerprint}


def webhook_body(message: Message, *, receiver: str, group_key: str,
                 group_labels: Mapping[str, str], now: float,
                 external_url: str) -> dict[str, Any]:
    alerts = ([_alert_json(a, FIRING, now, external_url) for a in message.firing]
              + [_alert_json(a, RESOLVED, now, external_url) for a in message.resolved])
    kept = alerts[:ALERTS_MAX]
    return {
        "version": "4", "groupKey": group_key, "truncatedAlerts": len(alerts) - len(kept),
        "status": message.status, "receiver": receiver, "groupLabels": dict(group_labels),
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": external_url, "alerts": kept,
    }


def title(body: Mapping[str, Any]) -> str:
    """``[FIRING:2] payments errors`` (Alertmanager's default title), or ``[RESOLVED] ...``."""
    firing = sum(1 for a in body["alerts"] if a["status"] == FIRING)
    name = body["commonLabels"].get("alertname") or ", ".join(
        f"{k}={v}" for k, v in body["groupLabels"].items()) or "alerts"
    status = f"FIRING:{firing}" if body["status"] == FIRING else "RESOLVED"
    severity = body["commonLabels"].get("severity")
    return f"[{status}] {name}" + (f" ({severity})" if severity else "")


def where(labels: Mapping[str, str]) -> str:
    if labels.get("source") and labels.get("target"):
        edge = f"{labels['source']} -> {labels['target']}"
        return edge + (f" ({labels['version']})" if labels.get("version") else "")
    if labels.get("instance"):
        return f"instance {labels['instance']}"
    return " ".join(filter(None, (labels.get("service"), labels.get("version")))) or "?"


def lines(body: Mapping[str, Any]) -> list[str]:
    """One line per alert: its status, where, and its summary."""
    out = []
    for alert in body["alerts"]:
        mark = "FIRING" if alert["status"] == FIRING else "RESOLVED"
        out.append(f"{mark} {where(alert['labels'])}: {alert['annotations'].get('summary', '')}"
                   f" since {alert['startsAt']}")
    if body.get("truncatedAlerts"):
        out.append(f"... and {body['truncatedAlerts']} more")
    return out


def email(body: Mapping[str, Any]) -> tuple[str, str]:
    """The subject and the plain-text body of an email."""
    text = "\n".join([title(body), "", *lines(body), "",
                      f"Alerts in meshui: {body['externalURL']}/alerts"])
    # A subject is one line: names cannot break it.
    return " ".join(title(body).split()), text + "\n"


def slack_escape(text: str) -> str:
    """Slack's three control characters (its docs: escape &, < and > in text)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(body: Mapping[str, Any]) -> dict[str, Any]:
    """An incoming-webhook message: the title, a line per alert, a link to the alerts."""
    head = slack_escape(title(body))
    items = "\n".join(f"• {slack_escape(line)}" for line in lines(body))
    link = f"<{body['externalURL']}/alerts|Open the alerts in meshui>"
    return {"text": head, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{head}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": items[:2900] or "-"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": link}]}]}


def test_body(receiver: str, now: float, external_url: str) -> dict[str, Any]:
    """What "send test notification" sends: a firing alert named TestAlert."""
    alert = Alert("0" * 16, {"alertname": "TestAlert", "severity": "info",
                             "instance": "meshui"},
                  {"summary": "a test notification from meshui", "description":
                   "sent by the contact point's test button or meshctl contact-points test"},
                  now, 0)
    body = webhook_body(Message(FIRING, (alert,), ()), receiver=receiver, group_key="test",
                        group_labels={"alertname": "TestAlert"}, now=now,
                        external_url=external_url)
    body["alerts"][0]["generatorURL"] = f"{external_url}/alerts/contact-points"
    return body
