"""Who may read and who may change: the rules every view and socket applies.

Reading (GET pages, GET API, the graph socket) is open to anyone when
``MESHUI_PUBLIC_READ`` is true and to logged-in users otherwise; changing anything always
needs a logged-in user, plus a CSRF token. The API checks the login first and CSRF second
(as DRF's SessionAuthentication does), so an anonymous write is a 401 saying "log in", not
a 403 about a token the caller could not have had (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

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

