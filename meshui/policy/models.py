"""Policy revisions (immutable, numbered) and the audit log of every write (docs/api.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class Source(models.TextChoices):
    """Where a revision came from."""

    UI = "ui"
    API = "api"
    CLI = "cli"
    ROLLBACK = "rollback"
    SEED = "seed"


class RevisionQuerySet(models.QuerySet["Revision"]):
    def newest_first(self) -> RevisionQuerySet:
        return self.order_by("-number")

    def current(self) -> Revision | None:
        """The revision in force: the newest one (None before the first)."""
        return self.newest_first().first()


class Revision(models.Model):
    """One whole traffic policy document (docs/policy.md), never changed once written."""

    number = models.PositiveBigIntegerField(unique=True)
    parent = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="the revision this one was edited from")
    document = models.JSONField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                               on_delete=models.SET_NULL, related_name="+")
    # Kept as text too, so the history still says who once the user is deleted.
    author_name = models.CharField(max_length=150, blank=True, default="")
    message = models.CharField(max_length=1000, blank=True, default="")
    source = models.CharField(max_length=16, choices=Source.choices)
    created_at = models.DateTimeField(default=timezone.now)

    objects = RevisionQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"revision {self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("a policy revision is immutable; write a new one")
        super().save(*args, **kwargs)


class Action(models.TextChoices):
    REVISION = "revision", "new revision"
    ROLLBACK = "rollback", "rollback"
    REFUSED = "refused", "refused write"
    TOKEN_CREATED = "token_created", "API token created"
    TOKEN_REVOKED = "token_revoked", "API token revoked"
    ALERT_RULE_CREATED = "alert_rule_created", "alert rule created"
    ALERT_RULE_UPDATED = "alert_rule_updated", "alert rule updated"
    ALERT_RULE_DELETED = "alert_rule_deleted", "alert rule deleted"
    CONTACT_POINT_CREATED = "contact_point_created", "contact point created"
    CONTACT_POINT_UPDATED = "contact_point_updated", "contact point updated"
    CONTACT_POINT_DELETED = "contact_point_deleted", "contact point deleted"
    CONTACT_POINT_TESTED = "contact_point_tested", "test notification sent"
    SILENCE_CREATED = "silence_created", "silence created"
    SILENCE_EXPIRED = "silence_expired", "silence expired"
    JOIN_TOKEN_CREATED = "join_token_created", "join token created"
    JOIN_TOKEN_REVOKED = "join_token_revoked", "join token revoked"


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    def newest_first(self) -> AuditEntryQuerySet:
        return self.order_by("-at", "-pk")


class AuditEntry(models.Model):
    """One write, or one refused attempt at a write: who, from where, through what, when."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150, blank=True, default="")
    action = models.CharField(max_length=32, choices=Action.choices)
    source = models.CharField(max_length=16, blank=True, default="")
    address = models.CharField(max_length=64, blank=True, default="")
    method = models.CharField(max_length=10, blank=True, default="")
    path = models.CharField(max_length=300, blank=True, default="")
    revision = models.PositiveBigIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=1000, blank=True, default="")
    # Refused writes from one address and path within a minute are one row with a count,
    # so a client hammering the API cannot grow the table by a row per request.
    count = models.PositiveIntegerField(default=1)
    last_at = models.DateTimeField(default=timezone.now)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or 'anonymous'} {self.action}"
