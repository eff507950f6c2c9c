"""Mute times of a contact point: weekly intervals in a time zone during which it is not
notified (Alertmanager's ``time_intervals``, reduced to days of the week and a time of day).

``{"days": ["sat", "sun"], "from": "00:00", "to": "24:00", "timezone": "Europe/Paris"}``
mutes weekends in Paris. ``from`` later than ``to`` crosses midnight (``22:00``-``06:00``:
the night, counted on the day it starts); no days is every day. Notifications due in a
mute time wait: the group is flushed after it ends, with what is still firing and resolved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")
INTERVALS_MAX = 20


class MuteProblem(ValueError):
    def __init__(self, index: int, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = f"mute_times[{index}].{field}" if field else f"mute_times[{index}]"


@dataclass(frozen=True, slots=True)
class Interval:
    days: frozenset[int]  # 0 = Monday; empty = every day
    start: int  # minutes after midnight
    end: int
    zone: ZoneInfo

    def covers(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        if self.start <= self.end:
            return self._on(local) and self.start <= minute < self.end
        # Across midnight: the evening of a listed day, or the morning after it.
        yesterday = local - timedelta(days=1)
        return (self._on(local) and minute >= self.start) or (
            self._on(yesterday) and minute < self.end)

    def _on(self, local: datetime) -> bool:
        return not self.days or local.weekday() in self.days


def _minutes(text: Any, index: int, field: str) -> int:
    if not isinstance(text, str) or not CLOCK.fullmatch(text):
        raise MuteProblem(index, field, "a time of day is HH:MM, 00:00 to 24:00")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def parse(raw: Iterable[Any]) -> list[Interval]:
    found = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise MuteProblem(index, "", 'a mute time is {"days", "from", "to", "timezone"}')
        days = item.get("days") or []
        if not isinstance(days, list) or any(day not in DAYS for day in days):
            raise MuteProblem(index, "days", f"days are among {', '.join(DAYS)}")
        start, end = _minutes(item.get("from"), index, "from"), _minutes(item.get("to"), index, "to")
        if start == end:
            raise MuteProblem(index, "to", "from and to are the same time: the interval is empty")
        zone_name = item.get("timezone") or "UTC"
        try:
            zone = ZoneInfo(zone_name) if isinstance(zone_name, str) else None
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
        if zone is None:
            raise MuteProblem(index, "timezone", f"{str(zone_name)[:60]!r} is not a time zone "
                                                 "(an IANA name such as Europe/Paris)")
        found.append(Interval(frozenset(DAYS.index(day) for day in days), start, end, zone))
    if len(found) > INTERVALS_MAX:
        raise MuteProblem(INTERVALS_MAX, "", f"at most {INTERVALS_MAX} mute times")
    return found


def muted(intervals: Iterable[Interval], moment: datetime) -> bool:
    return any(interval.covers(moment) for interval in intervals)
