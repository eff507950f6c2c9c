"""System check of the accounts app (ids are stable: docs/configuration.md, "System checks").

| id          | meaning                                                    |
|-------------|------------------------------------------------------------|
| meshui.W001 | MESHUI_SECRET_KEY is not set (a generated dev key is used) |
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
