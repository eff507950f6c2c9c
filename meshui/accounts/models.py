"""Per-user API tokens for the CLI and automation (``Authorization: Bearer <token>``).

A token is shown once, when it is created; only its SHA-256 digest is stored (a token is
32 random bytes, so a slow password hash would add nothing but latency to every request,
as GitHub and PyPI reason for theirs). A revoked token, or one whose user is inactive,
authenticates nobody.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "mshu_"
# A token's first characters, kept in clear so a person can tell their tokens apart.
SHOWN_CHARACTERS = 12
# last_used_at is written at most this often per token (a write per request is waste).
LAST_USED_RESOLUTION = timedelta(seconds=60)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="what the token is for")
    prefix = models.CharField(max_length=SHOWN_CHARACTERS)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.prefix}... ({self.name}, {self.user})"

    @classmethod
    def issue(cls, user: models.Model, name: str) -> tuple[ApiToken, str]:
        """A new token for ``user``: the row, and the token itself (shown once, never stored)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = cls.objects.create(user=user, name=name, prefix=token[:SHOWN_CHARACTERS],
                                 digest=digest(token))
        return row, token

    @classmethod
    def authenticate(cls, token: str) -> ApiToken | None:
        """The active token row ``token`` stands for, or None; records when it was used."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        row = cls.objects.active().select_related("user").filter(digest=digest(token)).first()
        if row is None:
            return None
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
            cls.objects.filter(pk=row.pk).update(last_used_at=now)
            row.last_used_at = now
        return row

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            type(self).objects.filter(pk=self.pk).update(revoked_at=self.revoked_at)
