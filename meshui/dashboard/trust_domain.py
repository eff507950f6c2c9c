"""The trust domain the pages name identities in: ``spiffe://<it>/service/<name>``."""

from __future__ import annotations

from django.conf import settings


def trust_domain() -> str:
    """``settings.MESHUI_TRUST_DOMAIN`` (docs/configuration.md; ``meshui.local`` by default),
    read per call so a changed setting (a test's) shows at once."""
    return str(settings.MESHUI_TRUST_DOMAIN)
