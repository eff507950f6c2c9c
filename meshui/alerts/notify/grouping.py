"""Alertmanager's aggregation groups as pure functions: when a group of alerts is notified.

Per contact point, alerts whose grouping labels are equal form a group. A new group waits
``wait`` (group wait, 30 s) so that alerts firing together go out in one message; after a
flush the group is looked at again every ``interval`` (group interval, 5 min), and
notified when its firing alerts are not all ones it notified already, or some it notified
have resolved; otherwise, while it fires, again after ``repeat`` (repeat interval, 4 h)
since its last message. One message carries every firing alert of the group (and those
resolved since the last one); its status is ``firing`` while any alert fires, else
``resolved``. Silenced alerts are left out of messages, neither firing nor resolved; a
contact point in a mute time is not notified, and what changed goes out at the first flush
after it. A group with nothing firing and nothing notified is dropped: a later alert starts
a new one (and waits ``wait`` again).

``decide`` takes a group's state and the alerts now, and returns its next state and the
message to send, if any. The caller (``dispatch``) calls it at or after ``due(group)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

FIRING, RESOLVED = "firing", "resolved"


@dataclass(frozen=True, slots=True)
class Timing:
    wait: float = 30.0
    interval: float = 300.0
    repeat: float = 4 * 3600.0
    send_resolved: bool = True


@dataclass(frozen=True, slots=True)
class Alert:
    """A firing alert as a message tells it: its fingerprint keys everything."""

    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    rule: int


@dataclass(frozen=True, slots=True)
class Group:
    created_at: float
    flushed_at: float | None = None  # the last flush (a message sent or not)
    sent_at: float | None = None  # the last message
    # The firing alerts the last message carried (and silenced ones kept from it), by
    # fingerprint: what "changed" is measured against.
    notified: Mapping[str, Alert] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Message:
    status: str
    firing: tuple[Alert, ...]
    resolved: tuple[Alert, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    group: Group | None  # None: drop the group
    message: Message | None
    next_at: float | None  # when to look again (None: dropped)


def due(group: Group, timing: Timing) -> float:
    if group.flushed_at is None:
        return group.created_at + timing.wait
    return group.flushed_at + timing.interval


def _by_start(alerts: Mapping[str, Alert]) -> tuple[Alert, ...]:
    return tuple(sorted(alerts.values(), key=lambda a: (a.starts_at, a.fingerprint)))


def decide(group: Group, active: Mapping[str, Alert], silenced: frozenset[str], now: float,
           timing: Timing, *, muted: bool = False) -> Decision:
    """Flush ``group`` at ``now``: ``active`` are its firing alerts, ``silenced`` the
    fingerprints (of active or notified alerts) a silence mutes now."""
    when = due(group, timing)
    if now < when:
        return Decision(group, None, when)
    firing = {fp: alert for fp, alert in active.items() if fp not in silenced}
    resolved = {fp: alert for fp, alert in group.notified.items()
                if fp not in active and fp not in silenced}
    kept = {fp: alert for fp, alert in group.notified.items() if fp in active and fp in silenced}
    if muted:
        # Nothing is sent and nothing counts as notified: the first flush after the mute
        # time sends what is then firing and resolved.
        flushed = replace(group, flushed_at=now)
        return Decision(flushed, None, now + timing.interval)
    changed = not firing.keys() <= group.notified.keys() or bool(resolved)
    repeat = bool(firing) and group.sent_at is not None and now - group.sent_at >= timing.repeat
    message = None
    sent_at = group.sent_at
    if firing and (changed or repeat):
        message = Message(FIRING, _by_start(firing),
                          _by_start(resolved) if timing.send_resolved else ())
    elif not firing and resolved and timing.send_resolved:
        message = Message(RESOLVED, (), _by_start(resolved))
    if message is not None:
        sent_at = now
    # A message makes what it carried the notified set; without one, alerts that went
    # away unnotified (resolved with send_resolved off, or while silenced) leave it.
    notified = (firing | kept) if message is not None else {
        fp: alert for fp, alert in group.notified.items() if fp in active}
    if not active and not notified:
        return Decision(None, message, None)
    return Decision(Group(group.created_at, now, sent_at, notified), message, now + timing.interval)
