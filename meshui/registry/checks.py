"""System checks of the registry (ids are stable: docs/configuration.md, "System checks").

| id          | meaning                                                  |
|-------------|----------------------------------------------------------|
| meshui.E001 | REDIS_URL is not set                                     |
| meshui.E002 | REDIS_URL is not a redis://, rediss:// or unix:// URL    |
| meshui.W002 | MESHUI_CONTROL_TOKEN is set, but join tokens replaced it |

Redis carries the registry's pushes (the channel layer), its endpoints version and restart
hold, and the Celery broker of its sweep; the dashboard reads the live graph from it too.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

REDIS_SCHEMES = ("redis", "rediss", "unix")


@register(Tags.compatibility, deploy=False)
def check_redis_url(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return [
            Error(
                "REDIS_URL is not set.",
                hint="Set REDIS_URL=redis://host:6379/0; the graph, the channel layer and "
                "Celery all live in Redis (`make demo` starts an embedded one).",
                id="meshui.E001",
            )
        ]
    if urlsplit(url).scheme not in REDIS_SCHEMES:
        return [
            Error(
                f"REDIS_URL must start with redis://, rediss:// or unix://, got {url!r}.",
                id="meshui.E002",
            )
        ]
    return []


@register(Tags.security)
def check_legacy_control_token(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The shared control token of before issue 11 is read by nobody any more: say so, or an
    operator upgrading believes the sidecars are still admitted by it."""
    if os.environ.get("MESHUI_CONTROL_TOKEN"):
        return [
            Warning(
                "MESHUI_CONTROL_TOKEN is set but no longer used: sidecars join with "
                "per-service join tokens, and one without refuses to connect.",
                hint="Create a token per service (manage.py join_token --service NAME, or "
                "POST /api/v1/join-tokens) and give each sidecar its own; then unset "
                "MESHUI_CONTROL_TOKEN (docs/security.md).",
                id="meshui.W002",
            )
        ]
    return []
