"""The audit log: every write, and every refused attempt at one (docs/api.md, "Audit log")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from meshui.policy.models import Action, AuditEntry
from meshui.registry.api import iso_timestamp as iso

# Refused writes from one address to one path inside this span are one row with a count.
COALESCE_WINDOW = timedelta(seconds=60)


def _who(request: HttpRequest) -> tuple[Any, str]:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user, user.get_username()
    return None, ""


def client_address(request: HttpRequest) -> str:
    """The peer's address, never a forwarded header (as the login lockout counts it)."""
    return str(request.META.get("REMOTE_ADDR") or "")[:64]


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """One entry as ``GET /api/v1/audit`` and the audit page show it."""
    return {"at": iso(entry.at), "last_at": iso(entry.last_at), "count": entry.count,
            "user": entry.username or None, "action": entry.action, "source": entry.source,
            "address": entry.address, "method": entry.method, "path": entry.path,
            "revision": entry.revision, "detail": entry.detail}


def record(request: HttpRequest, action: Action, *, source: str = "", revision: int | None = None,
           detail: str = "") -> AuditEntry:
    """Log one write that happened (call it inside the write's transaction)."""
    user, username = _who(request)
    return AuditEntry.objects.create(
        user=user, username=username, action=action, source=source,
        address=client_address(request), method=request.method or "",
        path=request.path[:300], revision=revision, detail=detail[:1000])


def record_refusal(request: HttpRequest, detail: str) -> None:
    """Log a write that was refused (no login, a bad token, a role too low)."""
    user, username = _who(request)
    now = timezone.now()
    address, path = client_address(request), request.path[:300]
    recent = AuditEntry.objects.filter(
        action=Action.REFUSED, address=address, path=path, username=username,
        detail=detail[:1000], last_at__gte=now - COALESCE_WINDOW).order_by("-last_at").first()
    if recent is not None:
        AuditEntry.objects.filter(pk=recent.pk).update(count=F("count") + 1, last_at=now)
        return
    AuditEntry.objects.create(
        user=user, username=username, action=Action.REFUSED, address=address,
        method=request.method or "", path=path, detail=detail[:1000], at=now, last_at=now)
