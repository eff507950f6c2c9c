"""Who may read and who may change: the rules every page, API endpoint and socket applies.

Reading (GET pages, GET API, the graph socket) is open to anyone when
``MESHUI_PUBLIC_READ`` is true and to logged-in users otherwise; changing anything always
needs a logged-in user, plus a CSRF token (meshui.api.auth applies them to the API, which
answers 401 JSON; pages redirect to the login page).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

View = Callable[..., HttpResponse]


def can_read(user: Any) -> bool:
    return bool(settings.MESHUI_PUBLIC_READ or (user is not None and user.is_authenticated))


def can_write(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated)


def page_view(view: View) -> View:
    """Guard a read-only HTML page: redirect to the login page when reading needs it."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_read(request.user):
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper
