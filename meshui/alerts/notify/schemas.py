"""Contact points, silences and notifications in the API (docs/api.md, "Alerts")."""

from __future__ import annotations

from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field

from meshui.alerts.models import KINDS
from meshui.alerts.notify.matchers import OPS
from meshui.registry.schemas import DATE_TIME

Kind = Literal[KINDS]  # type: ignore[valid-type]
MatcherOp = Literal[OPS]  # type: ignore[valid-type]


class MuteTime(Schema):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=list, description="none: every day")
    from_: str = Field(alias="from", description="HH:MM")
    to: str = Field(description="HH:MM (24:00 for the end of the day; earlier than `from`: "
                                "across midnight)")
    timezone: str = Field("UTC", max_length=64, description="an IANA name")


class ContactPointIn(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    url: str | None = Field(None, max_length=2000, description="webhook and slack")
    address: str | None = Field(None, max_length=2000,
                                description="email: addresses, comma separated")
    send_resolved: bool = True
    group_by: list[str] = Field(["alertname"], max_length=20,
                                description='label names; ["..."]: every label')
    group_wait_s: int = Field(30, description="a new group waits this long for more alerts")
    group_interval_s: int = Field(300, description="a group's changes go out at most this "
                                                   "often")
    repeat_interval_s: int = Field(4 * 3600, description="a group still firing is notified "
                                                         "again after this long")
    mute_times: list[MuteTime] = Field(default_factory=list, max_length=20)


class AttemptOut(Schema):
    id: int
    at: str = Field(json_schema_extra=DATE_TIME)
    ok: bool
    permanent: bool = Field(description="a failure that retrying cannot fix")
    status_code: int | None = Field(description="HTTP or SMTP code, when there was an answer")
    detail: str
    duration_ms: float
    notification: int | None = Field(description="null for a test")
    status: str = Field(description="firing, resolved or test")


class ContactPointOut(Schema):
    id: int
    name: str
    kind: str
    url: str | None = None
    address: str | None = None
    send_resolved: bool
    group_by: list[str]
    group_wait_s: int
    group_interval_s: int
    repeat_interval_s: int
    mute_times: list[dict[str, object]]
    status: Literal["ok", "failing", "untested"]
    failing_reason: str
    failing_since: str | None = Field(json_schema_extra=DATE_TIME)
    last_attempt: AttemptOut | None
    rules: list[int] = Field(description="the rules that notify it")
    created_at: str = Field(json_schema_extra=DATE_TIME)
    updated_at: str = Field(json_schema_extra=DATE_TIME)


class ContactPointList(Schema):
    contact_points: list[ContactPointOut] = Field(description="by name")


class TestResult(Schema):
    ok: bool
    detail: str
    status_code: int | None
    attempt: AttemptOut


class AttemptList(Schema):
    attempts: list[AttemptOut] = Field(description="newest first")


class MatcherIn(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64)
    op: MatcherOp = "="
    value: str = Field(max_length=256)


class SilenceIn(Schema):
    model_config = ConfigDict(extra="forbid")

    matchers: list[MatcherIn] = Field(min_length=1, max_length=20)
    starts_at: str | None = Field(None, description="ISO 8601; default now",
                                  json_schema_extra=DATE_TIME)
    ends_at: str | None = Field(None, description="ISO 8601; or give duration_s",
                                json_schema_extra=DATE_TIME)
    duration_s: int | None = Field(None, ge=1, le=366 * 86400,
                                   description="from starts_at; or give ends_at")
    comment: str = Field("", max_length=500)


class SilencedAlert(Schema):
    rule: int
    name: str
    target: dict[str, str]
    state: str


class SilenceOut(Schema):
    id: int
    matchers: list[dict[str, str]]
    starts_at: str = Field(json_schema_extra=DATE_TIME)
    ends_at: str = Field(json_schema_extra=DATE_TIME)
    comment: str
    created_by: str
    state: Literal["active", "pending", "expired"]
    matching: list[SilencedAlert] = Field(description="the alerts (rule and target, any "
                                                      "state) it matches now, at most 50")


class SilenceList(Schema):
    silences: list[SilenceOut] = Field(description="active, then pending, then expired; "
                                                   "newest first in each")


class NotificationOut(Schema):
    id: int
    contact_point: int
    group_labels: dict[str, str]
    status: str = Field(description="firing or resolved")
    alerts: int
    state: Literal["pending", "sending", "sent", "failed"]
    attempts: int
    last_error: str
    created_at: str = Field(json_schema_extra=DATE_TIME)
    sent_at: str | None = Field(json_schema_extra=DATE_TIME)
    next_attempt_at: str | None = Field(json_schema_extra=DATE_TIME)


class NotificationList(Schema):
    notifications: list[NotificationOut] = Field(description="newest first")
