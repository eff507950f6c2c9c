"""Join tokens (how a sidecar joins the mesh) and the certificates issued to sidecars.

A join token is shown once, when it is created; only its SHA-256 digest is stored (it is 32
random bytes, so a fast hash is right: nothing to brute-force, as for API tokens). A token
lets a sidecar join as one service, and obtain that service's identity only.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "mjt_"
TOKEN_MAX_CHARS = 200  # a token is 47 characters; anything much longer is not one
SHOWN_CHARACTERS = 12
DESCRIPTION_MAX = 200
# last_used_at is written at most this often per token (a connection storm of one
# service's sidecars is then one write, not one per sidecar).
LAST_USED_RESOLUTION = timedelta(seconds=60)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX) and len(token) <= TOKEN_MAX_CHARS


class TokenState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class JoinTokenQuerySet(models.QuerySet["JoinToken"]):
    def newest_first(self) -> JoinTokenQuerySet:
        return self.order_by("-created_at", "-pk")


class JoinToken(models.Model):
    service = models.CharField(max_length=63, help_text="the only service it may join as")
    description = models.CharField(max_length=DESCRIPTION_MAX, blank=True, default="")
    token_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256, hex")
    prefix = models.CharField(max_length=SHOWN_CHARACTERS)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    # Kept as text too: who made it, once the user is gone, or "manage.py" for the command.
    created_by_name = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = JoinTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.prefix}... ({self.service})"

    @classmethod
    def issue(cls, service: str, *, description: str = "", expires_in_s: int | None = None,
              created_by: Any = None, created_by_name: str = "") -> tuple[JoinToken, str]:
        """A new token for ``service``: the row, and the token itself (shown once)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        lifetime = settings.MESHUI_JOIN_TOKEN_TTL_S if expires_in_s is None else expires_in_s
        now = timezone.now()
        if created_by is not None and not created_by_name:
            created_by_name = created_by.get_username()
        row = cls.objects.create(
            service=service, description=description, token_hash=token_digest(token),
            prefix=token[:SHOWN_CHARACTERS], created_by=created_by,
            created_by_name=created_by_name, created_at=now,
            expires_at=now + timedelta(seconds=lifetime))
        return row, token

    @classmethod
    def by_token(cls, token: str) -> JoinToken | None:
        if not looks_like_token(token):
            return None
        return cls.objects.filter(token_hash=token_digest(token)).first()

    def state(self, now: datetime | None = None) -> TokenState:
        if self.revoked_at is not None:
            return TokenState.REVOKED
        if self.expires_at <= (now or timezone.now()):
            return TokenState.EXPIRED
        return TokenState.ACTIVE

    def revoke(self, now: datetime | None = None) -> bool:
        """Revoke it (idempotent); whether this call did."""
        if self.revoked_at is not None:
            return False
        self.revoked_at = now or timezone.now()
        self.save(update_fields=["revoked_at"])
        return True


class CertificateQuerySet(models.QuerySet["Certificate"]):
    def latest_per_proxy(self) -> CertificateQuerySet:
        """Each proxy's newest certificate (the highest id: rows are written in issue order)."""
        newest = self.values("proxy_id").annotate(newest=models.Max("pk")).values("newest")
        return self.filter(pk__in=newest).order_by("service", "proxy_id")


class Certificate(models.Model):
    """One certificate meshui's CA issued to a sidecar over the control channel."""

    proxy_id = models.CharField(max_length=200, db_index=True)
    service = models.CharField(max_length=63)
    spiffe_id = models.CharField(max_length=400)
    serial = models.CharField(max_length=40, unique=True, help_text="lower-case hex")
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    issued_at = models.DateTimeField(default=timezone.now)
    token = models.ForeignKey(JoinToken, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="certificates")

    objects = CertificateQuerySet.as_manager()

    class Meta:
        ordering = ["-issued_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.serial} ({self.proxy_id}, {self.spiffe_id})"
