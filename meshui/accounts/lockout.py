"""Failed-login lockout, the django-axes way: who is counted, and the page a locked-out user sees.

settings.py configures axes (5 failures per username + address, 15 minutes, env-driven);
this module is its two hooks, ``AXES_CLIENT_IP_CALLABLE`` and ``AXES_LOCKOUT_CALLABLE``,
and the pure wording of "when may I try again" (docs/api.md, "Failed logins").
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str | None:
    """The address django-axes counts failures by: the peer, never a forwarded header."""
    return request.META.get("REMOTE_ADDR")


def retry_wording(ends: datetime, now: datetime) -> str:
    """'after 14:05 UTC (in 15 minutes)': when a locked-out login may try again. Pure."""
    seconds = max(0, math.ceil((ends - now).total_seconds()))
    if seconds < 60:
        wait = f"{seconds} second{'s' if seconds != 1 else ''}"
    else:
        minutes = math.ceil(seconds / 60)
        wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
    when = ends.astimezone(UTC).strftime("%H:%M:%S" if seconds < 60 else "%H:%M")
    return f"after {when} UTC (in {wait})"


def lockout_ends(request: HttpRequest, username: str, now: datetime) -> datetime:
    """When the lockout of ``username`` from this address ends: last failure + cool-off."""
    from axes.helpers import get_cool_off
    from axes.models import AccessAttempt

    cool_off = get_cool_off(request) or timedelta(0)
    last = AccessAttempt.objects.filter(
        username=username, ip_address=client_ip(request)
    ).aggregate(last=Max("attempt_time"))["last"]
    return (last or now) + cool_off


def login_lockout(
    request: HttpRequest, original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """django-axes' AXES_LOCKOUT_CALLABLE: the login page, saying when to try again (429)."""
    from django.contrib.auth.forms import AuthenticationForm
    from django.shortcuts import render
    from django.utils import timezone

    username = str((credentials or {}).get("username") or request.POST.get("username") or "")
    now = timezone.now()
    ends = lockout_ends(request, username, now)
    logger.warning("login locked out: username=%r address=%s until %s",
                   username, client_ip(request), ends.isoformat())
    context = {
        "form": AuthenticationForm(request, initial={"username": username}),
        "next": request.POST.get("next") or request.GET.get("next") or "",
        "lockout": {"retry": retry_wording(ends, now), "limit": settings.AXES_FAILURE_LIMIT},
    }
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(max(1, math.ceil((ends - now).total_seconds())))
    return response
