"""The trust domain the pages name identities in: ``spiffe://<it>/service/<name>``."""

from __future__ import annotations

from django.conf import settings

from proxies.identity.spiffe import DEFAULT_TRUST_DOMAIN


def trust_domain() -> str:
    """``settings.MESHUI_TRUST_DOMAIN`` (docs/configuration.md), ``meshui.local`` without it."""
    return str(getattr(settings, "MESHUI_TRUST_DOMAIN", DEFAULT_TRUST_DOMAIN))
