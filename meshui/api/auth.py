"""Authentication for the API: API tokens, or the session with its CSRF rule on writes.

``TokenAuth`` takes ``Authorization: Bearer <token>`` (per-user tokens, meshui.accounts.models;
no CSRF: no cookie is involved). A presented token that is wrong or revoked is a 401 saying
so, never a fall-back to the session. Without one, ``SessionAuth`` applies.

django-ninja's own ``SessionAuth`` checks the CSRF token before it looks at the session, so
an anonymous write would be a 403 about a token the caller could not have had. Ours checks
the login first and CSRF second, as DRF's SessionAuthentication does: an anonymous write is
``401 unauthenticated`` ("log in"), a logged-in write without a valid token ``403
csrf_failed`` (docs/api.md, "Authentication").
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from ninja.openapi.views import openapi_view
from ninja.security import APIKeyCookie, HttpBearer

from meshui.accounts.access import SAFE_METHODS, can_read, can_write
from meshui.accounts.models import ApiToken
from meshui.accounts.roles import Role, has_role, role_of
from meshui.api.errors import ApiError, ErrorCode, Refused, unauthenticated
from meshui.api.methods import not_allowed
from meshui.policy.audit import record_refusal


def _view(request: HttpRequest) -> HttpResponse:
    """Stands for the view in Django's CSRF check: one that is not ``csrf_exempt``."""
    return HttpResponse()


def csrf_refusal(request: HttpRequest) -> HttpResponse | None:
    """Django's own CSRF check, run by hand after the login check (None when it passes).

    The middleware already read the cookie in ``process_request``; every API view is exempt
    from its ``process_view`` (django-ninja marks them so) only so that this runs after
    authentication. A refusal goes through ``CSRF_FAILURE_VIEW``
    (``meshui.api.errors.csrf_failure``: the JSON ``csrf_failed``).
    """
    check = CsrfViewMiddleware(_view)
    return check.process_view(request, _view, (), {})


class TokenAuth(HttpBearer):
    """A per-user API token; the request then acts as the token's user."""

    openapi_description = "A per-user API token: `Authorization: Bearer mshu_...`"

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        row = ApiToken.authenticate(token)
        if row is None:
            if request.method not in SAFE_METHODS:
                record_refusal(request, "invalid or revoked API token")
            raise ApiError(ErrorCode.UNAUTHENTICATED,
                           "the API token is invalid or revoked; create a new one "
                           "(meshctl login, or the Tokens page)")
        request.user = row.user
        request.api_token = row  # type: ignore[attr-defined]
        return row.user


def require_role(request: HttpRequest, role: Role, what: str) -> None:
    """403 ``forbidden`` (and an audit entry) unless the caller holds ``role``."""
    if has_role(request.user, role):
        return
    held = role_of(request.user)
    detail = (f"{what} needs the {role} role; {request.user.get_username()} is "
              f"{'a ' + held if held else 'not allowed'} (ask an admin)")
    record_refusal(request, detail)
    raise ApiError(ErrorCode.FORBIDDEN, detail)


class SessionAuth(APIKeyCookie):
    """Django's session cookie. Reading: a user, or anyone under ``MESHUI_PUBLIC_READ``.

    Writing: a logged-in user with a valid CSRF token. ``csrf`` stays true so the
    interactive docs send the token with the writes they try out.
    """

    param_name = settings.SESSION_COOKIE_NAME

    def _get_key(self, request: HttpRequest) -> str | None:
        # No CSRF check here (the base class would run it before the login check).
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        # The user is resolved here, in ninja's worker thread. Under MESHUI_PUBLIC_READ
        # can_read() never looks at it, and ninja's truth test of the lazy user we return
        # then loaded the session inside the event loop of an async view (the graph): a 500
        # for every logged-in reader.
        user = request.user
        logged_in = can_write(user)  # resolves the lazy user
        reading = request.method in SAFE_METHODS
        if not (can_read(user) if reading else logged_in):
            if not reading:
                record_refusal(request, "not logged in")
            return None  # django-ninja raises AuthenticationError: our 401
        if not reading:
            refusal = csrf_refusal(request)
            if refusal is not None:
                raise Refused(refusal)
        # AnonymousUser under MESHUI_PUBLIC_READ is truthy too: the read is allowed.
        return user


def guard_docs(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The same rules for the schema and its docs page, which are plain Django views.

    The login (401, or the login page for a person reading the docs), CSRF on a write, then
    405 for anything but GET and HEAD.
    """
    auth = SessionAuth()
    page = getattr(view, "func", None) is openapi_view  # the HTML page, not the JSON

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            allowed = auth(request)
        except Refused as refused:
            return refused.response
        if not allowed:
            if page and request.method in SAFE_METHODS:
                return redirect_to_login(request.get_full_path())
            return unauthenticated()
        if request.method not in ("GET", "HEAD"):
            return not_allowed(request, frozenset({"GET", "HEAD"})).response()
        return view(request, *args, **kwargs)

    # CSRF is checked above, after the login (the middleware would check it first).
    guarded.csrf_exempt = True  # type: ignore[attr-defined]
    return guarded
