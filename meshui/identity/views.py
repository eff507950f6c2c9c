"""The certificates page (docs/ui.md, "/certificates"): every sidecar's identity and
certificate, the CA and its trust bundle, and for admins the join tokens.

Readable by whoever may read (``page_view``), as ``GET /api/v1/certificates`` is. The join
token controls are rendered for admins only: the join token API answers everyone else 403,
even for a list, so a viewer is told where tokens are managed instead. The page's script
reads and writes through the JSON API (docs/api.md, "Identity"); the first listing is in
the page, so it draws without waiting for a request.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from meshui.accounts.access import page_view
from meshui.accounts.roles import Role, has_role
from meshui.identity.authority import current_authority
from meshui.identity.listing import certificate_listing
from meshui.identity.schemas import DAY

# How often the page asks GET /api/v1/certificates: a rotation or a disconnection shows
# within a few seconds (certificates last hours; the control channel's heartbeat is 5 s).
POLL_MS = 5000
# What the "Expires in" choice offers (the API takes 60 s .. 365 days; 30 days by default).
TOKEN_LIFETIMES = [("1 hour", 3600), ("1 day", DAY), ("7 days", 7 * DAY), ("30 days", 30 * DAY),
                   ("90 days", 90 * DAY), ("365 days", 365 * DAY)]
DEFAULT_LIFETIME_S = 30 * DAY


def _token_access(user: Any) -> dict[str, Any]:
    if has_role(user, Role.ADMIN):
        return {"allowed": True, "reason": ""}
    who = user.get_username() if user is not None and user.is_authenticated else ""
    reason = ("Join tokens need the admin role" + (f"; {who} is not an admin" if who else
                                                   ": log in as an admin") + ".")
    return {"allowed": False, "reason": reason}


@page_view
def certificates(request: HttpRequest) -> HttpResponse:
    listing = certificate_listing(current_authority(), timezone.now())
    tokens = _token_access(request.user)
    page = {"listing": listing, "poll_ms": POLL_MS, "tokens": tokens}
    return render(request, "identity/certificates.html", {
        "nav": "certificates", "ca": listing["ca"], "has_certificates": bool(
            listing["certificates"]), "tokens": tokens, "page": page,
        "lifetimes": TOKEN_LIFETIMES, "default_lifetime_s": DEFAULT_LIFETIME_S})
