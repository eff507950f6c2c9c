"""Who may read and who may change: the rules every view and socket applies.

Reading (GET pages, GET API, the graph socket) is open to anyone when
``MESHUI_PUBLIC_READ`` is true and to logged-in users otherwise; changing anything always
needs a logged-in user, plus a CSRF token. The API checks the login first and CSRF second
(as DRF's SessionAuthentication does), so an anonymous write is a 401 saying "log in", not
a 403 about a token the caller could not have had (docs/api.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

View = Callable[..., HttpResponse]


def can_read(user: Any) -> bool:
    return bool(settings.MESHUI_PUBLIC_READ or (user is not None and user.is_authenticated))


def can_write(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated)


def json_error(status: int, error: str, detail: str, **extra: Any) -> JsonResponse:
    """The one error shape of the API: ``{"error": code, "detail": text, ...}``."""
    return JsonResponse({"error": error, "detail": detail, **extra}, status=status)


def _csrf_refusal(request: HttpRequest) -> HttpResponse | None:
    """Django's own CSRF check, run by hand after the login check (None when it passes).

    The middleware already read the cookie in ``process_request``; the view is exempt from
    its ``process_view`` only so that this runs after authentication. A refusal goes
    through ``CSRF_FAILURE_VIEW`` (the JSON ``csrf_failed`` below).
    """
    check = CsrfViewMiddleware(lambda request: HttpResponse())
    return check.process_view(request, None, (), {})


def api_view(*methods: str) -> Callable[[View], View]:
    """Guard a JSON API view: login (401), then CSRF on writes (403), then methods (405)."""
    allowed = {m.upper() for m in methods or ("GET",)}
    if "GET" in allowed:
        allowed.add("HEAD")

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            reading = request.method in SAFE_METHODS
            if not (can_read(request.user) if reading else can_write(request.user)):
                return json_error(401, "unauthenticated", "log in to use this endpoint")
            if not reading:
                refusal = _csrf_refusal(request)
                if refusal is not None:
                    return refusal
            if request.method not in allowed:
                response = json_error(
                    405, "method_not_allowed", f"{request.method} is not allowed here"
                )
                response["Allow"] = ", ".join(sorted(allowed))
                return response
            return view(request, *args, **kwargs)

        return csrf_exempt(wrapper)

    return decorator


def page_view(view: View) -> View:
    """Guard a read-only HTML page: redirect to the login page when reading needs it."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_read(request.user):
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF refusals as JSON on the API, Django's page elsewhere (CSRF_FAILURE_VIEW)."""
    if request.path.startswith("/api/"):
        return json_error(403, "csrf_failed", f"CSRF verification failed: {reason}")
    from django.views.csrf import csrf_failure as default

    return default(request, reason)


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
