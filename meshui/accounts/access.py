"""Who may read and who may change: the rules every page, API endpoint and socket applies.

Reading (GET pages, GET API, the graph socket) is open to anyone when
``MESHUI_PUBLIC_READ`` is true and to logged-in users otherwise; changing anything always
needs a logged-in user, plus a CSRF token (meshui.api.auth applies them to the API, which
answers 401 JSON; pages redirect to the login page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

from meshui.accounts.roles import Role, has_role, role_of

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


@dataclass(frozen=True, slots=True)
class EditAccess:
    """Whether a page's controls that change something are enabled, and if not, why."""

    allowed: bool
    reason: str  # why the controls are disabled ('' when allowed)


def operator_access(user: Any, to: str, doing: str) -> EditAccess:
    """The operator role's access to a page's edit controls, with the reason said in the
    page's own words: ``to`` = "change the traffic policy", ``doing`` = "Changing the
    traffic policy" (the controls are shown disabled with it, docs/ui.md)."""
    if has_role(user, Role.OPERATOR):
        return EditAccess(True, "")
    if user is None or not user.is_authenticated:
        return EditAccess(False, f"Log in as an operator to {to}.")
    return EditAccess(False, f"{doing} needs the operator role; {user.get_username()} is a "
                             f"{role_of(user) or 'viewer'} (ask an admin).")
