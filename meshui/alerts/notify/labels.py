"""An alert's labels and fingerprint: what silences match, grouping groups and receivers see.

An alert is one rule on one concrete target. Its labels are the rule's own, then
``alertname`` (the rule's name), ``severity`` and the target's fields (``service``,
``version``, ``source``, ``target``, ``instance``), which a rule's labels cannot set
(``meshui.alerts.rules`` refuses them). Its fingerprint, as Alertmanager's, is a hash of
the label set: the same alert keeps it across cycles, restarts and workers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import orjson


def alert_labels(rule_name: str, severity: str, rule_labels: Mapping[str, str],
                 target: Mapping[str, str]) -> dict[str, str]:
    labels = dict(rule_labels)
    labels["alertname"] = rule_name
    labels["severity"] = severity
    labels.update(target)
    return labels


def fingerprint(labels: Mapping[str, str]) -> str:
    return hashlib.sha256(orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


EVERY_LABEL = "..."


def group_labels(labels: Mapping[str, str], group_by: list[str]) -> dict[str, str]:
    """The labels an alert is grouped by: those named (missing ones as ""), or, with
    ``["..."]``, all of them (Alertmanager's special value: one group per alert)."""
    if EVERY_LABEL in group_by:
        return dict(labels)
    return {name: labels.get(name, "") for name in group_by}


def group_key(labels: Mapping[str, str]) -> str:
    return hashlib.sha256(orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)).hexdigest()
