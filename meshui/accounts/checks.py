"""System checks of the accounts app (ids are stable: docs/configuration.md, "System checks").

| id          | meaning                                                    |
|-------------|------------------------------------------------------------|
| meshui.W001 | MESHUI_SECRET_KEY is not set (a generated dev key is used) |
| meshui.W003 | plain HTTP with DEBUG off: logins, control channel in clear |
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


@register(Tags.security)
def check_secret_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # The key signs the session cookies and CSRF tokens every login rests on.
    if getattr(settings, "MESHUI_DEFAULT_SECRET_KEY", False):
        return [
            Warning(
                "MESHUI_SECRET_KEY is not set; a generated development key from var/ is used.",
                hint="Set MESHUI_SECRET_KEY to a long random string in any shared deployment.",
                id="meshui.W001",
            )
        ]
    return []


@register(Tags.security)
def check_https(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # Passwords, session cookies and the sidecars' tokens all cross the wire in the clear
    # without HTTPS; DEBUG says "a developer's box", where that is the accepted trade.
    if settings.DEBUG or getattr(settings, "MESHUI_HTTPS", False):
        return []
    return [
        Warning(
            "meshui serves plain HTTP: logins, session cookies and the control channel "
            "(the sidecars' tokens, the policy pushed to them) travel in plaintext.",
            hint="Set MESHUI_TLS_CERT and MESHUI_TLS_KEY (and start uvicorn with "
            "--ssl-certfile/--ssl-keyfile), or MESHUI_BEHIND_TLS_PROXY=1 behind a TLS proxy; "
            "docs/security.md, \"The dashboard over HTTPS\". Fine on a laptop (make demo).",
            id="meshui.W003",
        )
    ]
